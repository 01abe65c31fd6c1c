"""matchwise: recommendation and matching backend for matching apps."""

__version__ = "0.1.0"
