"""The ``matchwise`` command."""
