"""``python -m matchwise`` runs the CLI."""

from matchwise.cli.app import main

main()
