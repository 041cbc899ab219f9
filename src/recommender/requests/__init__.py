"""One request's path over a row space: the query (``queries``: an article id, examples, a
reader's history or raw text), its candidates (``candidates``: dense and lexical, from the
whole archive and from time windows), and the explained response (``explain``).

May import ``rowspace`` and everything below it; never the stored lists, live state or the
adapters.
"""
