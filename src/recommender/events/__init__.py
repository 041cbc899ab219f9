"""Reader events: what a site showed its readers, what they clicked, what they read.

Owns the event records and their validation (``records``), the durable event log beside the
store (``log``: SQLite, reader keys hashed with a per-index secret, group-committed appends,
retention, forgetting a reader) and the importers of logged events (``imports``: JSONL and
MIND's ``behaviors.tsv``). May import ``ingest`` (dates, echo), ``storage.schema`` (int ids)
and the support modules; nothing above.
"""
