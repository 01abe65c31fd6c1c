"""Models: one interface (``base.Recommender``), one file per model."""
