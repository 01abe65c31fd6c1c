"""Rows that successive catalogues share and grow at the end without copying.

The people catalogue's bio vectors are 1.5 GB at a million people. A catalogue patched
with a few new or changed profiles (:meth:`~matchwise.serve.state.PeopleCatalogue.
patched`) is a new catalogue, while the old one may still be serving a request: copying
the vectors for it would cost seconds and double their memory for a moment. Instead the
vectors live in a buffer with spare rows at its end; each catalogue sees the first rows
it owns (a view), and the first catalogue to append after row ``n`` writes into the spare
rows, which no catalogue sees yet. Any other append after ``n`` (a second catalogue made
from the same old one) gets a buffer of its own.
"""

from __future__ import annotations

import threading

import numpy as np


def spare_rows(rows: int) -> int:
    """Room left at the end of a buffer of ``rows``: a sixteenth, at least 256 rows
    (untouched pages of a zeroed buffer take no memory until written)."""
    return max(256, rows // 16)


class AppendableRows:
    """A ``(capacity, width)`` buffer whose first ``claimed`` rows belong to catalogues."""

    def __init__(self, rows: int, width: int, dtype: type = np.float32) -> None:
        self.buffer: np.ndarray = np.zeros((rows + spare_rows(rows), width), dtype=dtype)
        self.claimed = rows
        self._lock = threading.Lock()

    @classmethod
    def holding(cls, rows: np.ndarray) -> AppendableRows:
        """A buffer whose first rows are a copy of ``rows``."""
        held = cls(len(rows), rows.shape[1], rows.dtype.type)
        held.buffer[: len(rows)] = rows
        return held

    def first(self, rows: int) -> np.ndarray:
        """The first ``rows`` rows, as a view (no copy)."""
        return self.buffer[:rows]

    def append(self, rows: int, more: np.ndarray) -> tuple[AppendableRows, np.ndarray]:
        """The first ``rows`` rows followed by ``more``: written into the spare rows when
        nobody appended after ``rows`` yet and they have room (this buffer, a longer
        view), else into a new buffer holding a copy of the first ``rows``."""
        total = rows + len(more)
        with self._lock:
            if self.claimed == rows and total <= len(self.buffer):
                self.buffer[rows:total] = more
                self.claimed = total
                return self, self.buffer[:total]
        grown = AppendableRows(total, self.buffer.shape[1], self.buffer.dtype.type)
        grown.buffer[:rows] = self.buffer[:rows]
        grown.buffer[rows:total] = more
        return grown, grown.buffer[:total]
