"""The one row numbering of a loaded snapshot plus its live overlay (``space.RowSpace``), and
the frozen map a write copies in O(its changes) (``layered``).

May import ``storage``, ``index``, ``embedding``, ``ranking``, ``ingest`` and the support
modules.
"""

from recommender.rowspace.space import LiveArticle, RowSpace

__all__ = ["LiveArticle", "RowSpace"]
