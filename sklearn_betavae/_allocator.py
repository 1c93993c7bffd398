"""The C allocator's treatment of a training step's large tensors (glibc).

A training step of the convolutional model allocates and frees tens of
megabytes of activations and gradients. glibc's ``malloc`` serves a block
above its *mmap threshold* with fresh ``mmap`` pages, and returns the top of its
heap to the system once more free memory lies there than its *trim threshold*
(``man 3 mallopt``). The thresholds start at 128 KiB; each time the process
frees an ``mmap``-served block larger than the mmap threshold (and at most
32 MiB on 64-bit systems), glibc raises the mmap threshold to that block's size
and the trim threshold to twice it. In a fresh process, the first steps raise
them to the size of a step's largest tensor, a few megabytes, while a step
frees far more than twice that: every step hands its memory back to the system
and takes it again page by page, thousands of page faults a step
(``benchmarks/bench_speed.py --only allocator``).

:func:`prime_allocator`, called when a fit starts (``_BaseVAE._fit``, beside
the other settings of the process a fit needs), allocates and frees one untouched block just under the
maximum, as freeing a NumPy array of that size would: glibc raises both
thresholds to their dynamic maximum and keeps serving the steps from memory it
already holds. It sets no ``mallopt`` parameter, so glibc's own adjustment
stays on; the top of each heap may then keep up to about 64 MiB of freed memory
for reuse. It does nothing with another C library, and glibc ignores it when an
environment setting (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_``, ``GLIBC_TUNABLES``) or a ``mallopt``
call has fixed the thresholds: the way to opt out. Tensors of more than 32 MiB
are served by ``mmap`` whatever is done.
"""

import functools
import platform
import struct
import sys

import torch

# glibc's DEFAULT_MMAP_THRESHOLD_MAX: the dynamic thresholds stop rising at this size.
_GLIBC_MMAP_THRESHOLD_MAX = 32 * 2**20 if struct.calcsize("P") == 8 else 512 * 2**10
# Below the maximum by more than a block's alignment and header, so the freed
# block counts (glibc compares its size, overhead included, with the maximum).
_PRIMING_BYTES = _GLIBC_MMAP_THRESHOLD_MAX - _GLIBC_MMAP_THRESHOLD_MAX // 32

_primed = False


@functools.cache
def _glibc():
    """Whether this process's C library is glibc (read once: it scans the interpreter)."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def prime_allocator():
    """Raise glibc's dynamic mmap and trim thresholds to their maximum, once per process.

    Allocates and frees a block of ``_PRIMING_BYTES`` through torch's CPU
    allocator without touching its pages (microseconds). A refused allocation
    (a tight address-space limit) leaves things as they were. See the module's
    docstring for why and for what it changes.
    """
    global _primed
    if _primed or not _glibc():
        return
    _primed = True
    try:
        torch.empty(_PRIMING_BYTES, dtype=torch.uint8)  # freed at once
    except RuntimeError:  # torch's out-of-memory error on the CPU
        pass
