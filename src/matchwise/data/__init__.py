"""Data: bundles of profiles/items/interactions, generators, loaders, datasets and splits."""

from matchwise.data.bundle import DataBundle

__all__ = ["DataBundle"]
