"""`python -m recommender` runs the command-line interface."""

from recommender.cli import main

raise SystemExit(main())
