"""`python -m recommender` runs the command-line interface."""

from recommender.cli.main import main

raise SystemExit(main())
