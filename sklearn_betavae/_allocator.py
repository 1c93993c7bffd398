"""The C allocator's treatment of a training step's large tensors (glibc).

A training step of the convolutional model allocates and frees tens of
megabytes of activations and gradients (a 64x64 step in bf16 about 20 MB).
glibc's ``malloc`` serves blocks above its *mmap threshold* with fresh
``mmap`` pages and returns the top of its heap to the system once more than
twice that threshold lies free there (``man 3 mallopt``). Both thresholds start
at 128 KiB and rise, by glibc's own rule, to the size of the largest
``mmap``-served block the process has freed, up to 32 MiB on 64-bit systems.
Until a process has freed such a block, every step takes its memory back from
the system page by page: thousands of page faults a step, a fifth of the step's
time in bf16 on the 64x64 model (``benchmarks/bench_speed.py --only allocator``).

:func:`prime_allocator`, called when the training loop starts
(``VAENet.fit_loop``), frees one block just under 32 MiB, untouched, as any process does that frees a large numpy array: glibc raises both thresholds to
their dynamic maximum and keeps serving the steps from memory it already holds.
It sets no ``mallopt`` parameter, so glibc's own adjustment stays on (the
process keeps at most about 64 MiB of freed memory at the top of its heap, where
it kept a few), and it does nothing with another C library or when an
environment setting (``MALLOC_MMAP_THRESHOLD_``, ``GLIBC_TUNABLES``) has fixed
the thresholds.
"""

import platform
import struct
import sys

import torch

# glibc's DEFAULT_MMAP_THRESHOLD_MAX: the dynamic thresholds stop rising at this size.
_GLIBC_MMAP_THRESHOLD_MAX = 4 * 2**20 * struct.calcsize("l")
# Below the maximum by more than a block's alignment and header, so the freed
# block counts (glibc compares its size, overhead included, with the maximum).
_PRIMING_BYTES = _GLIBC_MMAP_THRESHOLD_MAX - 2**20

_primed = False


def _glibc():
    """Whether this process's C library is glibc."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def prime_allocator():
    """Raise glibc's dynamic mmap and trim thresholds to their maximum, once per process.

    Allocates and frees a block of :data:`_PRIMING_BYTES` through torch's CPU
    allocator without touching its pages (microseconds). See the module's
    docstring for why and for what it changes.
    """
    global _primed
    if _primed or not _glibc():
        return
    torch.empty(_PRIMING_BYTES, dtype=torch.uint8)  # freed at once
    _primed = True
