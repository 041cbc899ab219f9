"""Batch jobs over an archive: the index job (``indexing``: read sources, embed, write through
the store, build and publish a snapshot with its lists) and its Ray engine (``raybatch``).

May import ``live``, ``config`` and everything below them; not the engine facade or the
adapters.
"""
