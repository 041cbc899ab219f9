"""Stored "read also" lists: every article's default answer computed ahead and kept encoded
for the wire (``stored``, items encoded by ``wire``), built for a snapshot in worker
processes (``build``) and kept fresh as writes arrive (``freshness``).

May import ``requests`` and everything below it, and the generated protobuf messages
(``recommender.v1.recommender_pb2``); never the adapters (``service``, ``cli``).
"""

from recommender.lists.files import save
from recommender.lists.stored import (
    LIST_DEPTH,
    StoredList,
    StoredLists,
    compute,
    default_answer,
    encode,
    snapshot_field,
)

__all__ = [
    "LIST_DEPTH",
    "StoredList",
    "StoredLists",
    "compute",
    "default_answer",
    "encode",
    "save",
    "snapshot_field",
]
