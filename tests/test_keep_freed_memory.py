"""A refresh process keeps the memory a block frees (runtime.keep_freed_memory): the
next block's arrays come from it, not from the kernel as page faults."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from matchwise.runtime import keep_freed_memory
from matchwise.settings import Settings

#: Allocates and frees block-sized arrays as a refresh does (a sum, a product, a
#: quotient of a million pairs, twenty times) and prints the page faults it took.
_BLOCKS = """
import json, resource, sys
import numpy as np
from matchwise.runtime import keep_freed_memory
kept = keep_freed_memory(int(sys.argv[1]))
a, b = np.random.default_rng(0).random((2, 1_000_000))
def block():
    total = a + b
    return np.divide(2.0 * a * b, total, out=np.zeros_like(total), where=total > 0).sum()
block()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"kept": kept, "faults": after - before}))
"""


def _faults(mib: int) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", _BLOCKS, str(mib)], capture_output=True,
                          text=True, check=True, timeout=120)  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_blocks_are_reused_not_faulted_in_again() -> None:
    as_is, kept = _faults(0), _faults(256)
    assert not as_is["kept"] and kept["kept"]
    # each block takes five arrays of 8 MB (~10,000 pages); as is, glibc hands many back
    # and takes them again (22,000-32,000 faults in 20 blocks measured), kept: none
    assert as_is["faults"] > 20 * 500
    assert kept["faults"] < as_is["faults"] / 10


def test_the_setting_bounds_what_is_kept() -> None:
    assert Settings().refresh_keep_freed_mib == 1024
    assert keep_freed_memory(0) is False  # 0: the allocator as it is
    with pytest.raises(ValueError, match="refresh_keep_freed_mib"):
        Settings(refresh_keep_freed_mib=-1)


#: Fills the C heap with 4 KiB buffers (above pymalloc's 512 bytes, below glibc's mmap
#: threshold), keeps one allocated above them so glibc cannot trim the heap's top, frees
#: the rest (as a replaced catalogue is freed) and prints RSS before and after the trim.
_REPLACED = """
import json, sys
from matchwise.runtime import give_back_freed_memory
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
old = [bytearray(4096) for _ in range(25_000)]
pin = bytearray(4096)
del old
freed = rss()
given = give_back_freed_memory() if sys.argv[1] == "trim" else False
print(json.dumps({"given": given, "freed": freed, "after": rss()}))
"""


def _rss_after(how: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", _REPLACED, how], capture_output=True,
                          text=True, check=True, timeout=120)  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_replaced_heap_goes_back_to_the_kernel_after_the_trim() -> None:
    as_is, trimmed = _rss_after("keep"), _rss_after("trim")
    assert trimmed["given"] and not as_is["given"]
    # ~100 MiB freed under a pinned top: glibc keeps all of it as is; the trim returns it
    assert as_is["freed"] - as_is["after"] < 5
    assert trimmed["freed"] - trimmed["after"] > 60
