"""Features: structured compatibility, text embeddings, behavioural signals."""
