"""The admin dashboard at ``/dashboard`` (see :mod:`.routes`)."""
