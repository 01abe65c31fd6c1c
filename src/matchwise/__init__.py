"""matchwise: recommendation and matching backend for matching apps."""

import os

# OpenMP threads (torch, LightGBM) sleep when idle instead of spinning: on a shared
# machine spinning threads burn the cores other work needs. Set before either library
# loads; a value the user set wins. Measured on the loaded 2-core sandbox, embedding
# 1,000 bios with two torch threads: 70.8 s wall / 15.7 s CPU spinning, 30.7 s / 5.9 s not.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
