"""Suite-wide switches for checking that tolerances hold on other CPUs' numerics.

``PRUNEPOSE_DISABLE_ONEDNN=1`` turns oneDNN (MKLDNN) off, so convolutions and matmuls take ATen's own
kernels: the suite must pass with and without it, because a user's CPU or torch build may not use oneDNN.
Thread count (``OMP_NUM_THREADS``) and ``ATEN_CPU_CAPABILITY=default`` (non-AVX2 kernels) are read by
torch itself from the environment; README.md ("Tests on other CPUs") lists the variants the suite
is run under and why the float tolerances hold across them (tests/_numerics.py).
"""
from __future__ import annotations

import os

import torch

if os.environ.get("PRUNEPOSE_DISABLE_ONEDNN", "") not in ("", "0"):
    torch.backends.mkldnn.enabled = False
