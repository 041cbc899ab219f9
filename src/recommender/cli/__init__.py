"""The command line, an adapter over the engine and the batch jobs: ``main`` (the
``recommender`` command), its shared arguments (``args``), the index and publishing jobs
(``jobs``) and the stored-list export (``precompute``).
"""

from recommender.cli.main import main

__all__ = ["main"]
