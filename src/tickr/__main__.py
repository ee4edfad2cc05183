"""``python -m tickr`` runs the CLI."""

from tickr.cli.main import main

main()
