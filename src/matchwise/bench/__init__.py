"""Benchmarks against peers: MovieLens, people matching, Speed Dating."""
