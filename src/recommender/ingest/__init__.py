"""Articles in: the ``Article`` record and its validation (``records``), the readers of JSON
lines and CSV (``readers``), RSS/Atom feeds and HTML pages (``websources``, fetched within a
size cap and a deadline: ``fetch``), and the text recipe, what the model and the lexical index
see of an article (``text``).

The lowest domain layer: may import only the support modules (``errors``, ``files``).
"""
