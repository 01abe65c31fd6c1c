"""Bio vectors shared by successive people catalogues grow at the end without a copy,
and a catalogue never sees rows appended for another (serve.appendable)."""

from __future__ import annotations

import numpy as np

from matchwise.serve.appendable import AppendableRows, spare_rows


def test_the_first_append_after_a_row_writes_in_place_and_others_copy() -> None:
    held = AppendableRows.holding(np.arange(12, dtype=np.float32).reshape(6, 2))
    old = held.first(6)
    grown, longer = held.append(6, np.full((2, 2), 9, np.float32))
    assert grown is held and longer.shape == (8, 2) and np.shares_memory(longer, old)
    np.testing.assert_array_equal(old, np.arange(12).reshape(6, 2))  # the old view: as it was
    # a second catalogue made from the same old one: its own buffer, the first one's intact
    other, theirs = held.append(6, np.full((1, 2), 7, np.float32))
    assert other is not held and not np.shares_memory(theirs, longer)
    np.testing.assert_array_equal(theirs[6], [7, 7])
    np.testing.assert_array_equal(longer[6:], np.full((2, 2), 9))
    # past the spare rows: a bigger buffer, with room again
    rows = 8 + spare_rows(8)
    big, all_rows = grown.append(8, np.ones((rows, 2), np.float32))
    assert big is not grown and len(all_rows) == 8 + rows
    np.testing.assert_array_equal(all_rows[:8], longer)
    assert big.append(len(all_rows), np.zeros((1, 2), np.float32))[0] is big
