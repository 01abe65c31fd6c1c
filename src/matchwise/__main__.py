"""``python -m matchwise`` runs the CLI."""

from matchwise.cli import main

main()
