"""The allocator priming of ``sklearn_betavae._allocator``.

glibc's thresholds only rise within a process, so each case runs in a fresh
interpreter. It allocates blocks of a few to 30 MB, the sizes of a training step's
activations and gradients, one at a time, and reads from ``mallinfo2`` how much of
each glibc served with fresh ``mmap`` pages (returned to the system when freed,
page-faulted in again at the next allocation).
"""

import ctypes
import os
import subprocess
import sys

import pytest

from sklearn_betavae import _allocator

BLOCKS_MB = (4, 16, 30)

_MMAPPED = f"""
import ctypes, sys
import numpy as np
import torch
import sklearn_betavae

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == "fit":
    rows = np.random.RandomState(0).rand(16, 3)
    sklearn_betavae.BetaVAE(n_components=1, hidden_layer_sizes=(2,), max_epochs=1).fit(rows)
for mb in {BLOCKS_MB}:
    before = libc.mallinfo2().hblkhd  # bytes in mmap-served blocks
    block = torch.empty(mb << 20, dtype=torch.uint8)
    print((libc.mallinfo2().hblkhd - before) >> 20)
    del block
"""


def _mmapped_mb(case):
    """MB of each block of ``BLOCKS_MB`` that glibc served by mmap, in a fresh interpreter
    with glibc's default settings (no fixed thresholds, no preloaded allocator)."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("LD_PRELOAD", "GLIBC_TUNABLES") and not name.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", _MMAPPED, case], env=env,
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return [int(n) for n in out.split()]


@pytest.mark.skipif(not _allocator._glibc() or not hasattr(ctypes.CDLL(None), "mallinfo2"),
                    reason="the priming is for glibc's malloc (mallinfo2: glibc >= 2.33)")
def test_after_a_fit_glibc_serves_a_steps_blocks_from_its_heap():
    # Without a fit, each block above the largest one freed so far takes fresh pages
    # (the premise: true unless importing the libraries freed such a block already).
    cold = _mmapped_mb("cold")
    if cold != list(BLOCKS_MB):
        pytest.skip(f"blocks of {BLOCKS_MB} MB are not mmap-served at start here: {cold}")
    # A fit primes the allocator: up to about 31 MB, blocks come from memory it holds.
    assert _mmapped_mb("fit") == [0] * len(BLOCKS_MB)


@pytest.fixture
def allocations(monkeypatch):
    """The arguments of each ``torch.empty`` call of the priming, in a process not yet primed."""
    calls = []
    monkeypatch.setattr(_allocator, "_primed", False)
    monkeypatch.setattr(_allocator.torch, "empty", lambda *args, **kwargs: calls.append(args))
    return calls


def test_prime_allocator_does_nothing_outside_glibc(allocations, monkeypatch):
    monkeypatch.setattr(_allocator, "_glibc", lambda: False)
    _allocator.prime_allocator()
    assert allocations == [] and not _allocator._primed


def test_prime_allocator_allocates_once_per_process(allocations, monkeypatch):
    monkeypatch.setattr(_allocator, "_glibc", lambda: True)
    _allocator.prime_allocator()
    _allocator.prime_allocator()
    assert allocations == [(_allocator._PRIMING_BYTES,)]
    assert _allocator._PRIMING_BYTES < _allocator._GLIBC_MMAP_THRESHOLD_MAX
