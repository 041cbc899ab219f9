"""What lies on disk: the SQLite article store, the source of truth (``store``, its schema and
the stable integer ids: ``schema``), published checksummed snapshots (``snapshot``), the
working store writes go to (``working``), and snapshots published to and mirrored from shared
storage (``remote``).

May import ``index``, ``embedding``, ``ranking``, ``ingest`` and the support modules; nothing
that serves requests or holds live state.
"""
