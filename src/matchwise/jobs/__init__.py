"""Background work: the queue (``queue``), the worker (``worker``) and the built-in
job types (``handlers``)."""
