"""Deliberate thread counts for torch and the BLAS/OpenMP pools.

torch, OpenBLAS and OpenMP each start one thread per core and spin while they wait.
On a 2-core machine that something else also uses, those spinning threads take turns
with the real work: the demo's training went from about 1 minute to over 20 with
another CPU-bound process running. Long stages therefore run inside
:func:`limit_threads` with a count chosen on purpose, and record it.

Results of float reductions depend on how a sum is split across threads, so a fixed
count also makes training reproducible across machines with the same instruction set.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

__all__ = ["usable_cores", "limit_threads", "pin_x86_kernels", "X86_KERNELS"]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def limit_threads(threads: int) -> Iterator[int]:
    """Run the body with ``threads`` torch intra-op threads and BLAS/OpenMP threads.

    Parameters
    ----------
    threads : int
        Thread count, at least 1.

    Yields
    ------
    int
        The count in force.
    """
    import torch
    from threadpoolctl import threadpool_limits

    threads = max(1, int(threads))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield threads
    finally:
        torch.set_num_threads(previous)


X86_KERNELS = "AVX2"
"""Instruction set the demo's training is pinned to on x86 (every x86-64 CPU of the last decade has it)."""


def pin_x86_kernels() -> bool:
    """Make torch's CPU kernels use AVX2 on every x86 machine that has it, AVX-512 or not.

    ATen and oneDNN pick their kernels by the CPU's instruction set, and AVX-512 kernels
    sum in another order than AVX2 ones: a 15-epoch training amplifies that into a
    different model. Pinning both to AVX2 gives the same arithmetic on an AMD EPYC and
    an Intel Xeon. It must happen before torch runs its first CPU kernel in this process
    (both libraries read the setting once); afterwards it changes nothing. Settings the
    user made in the environment win.

    Returns
    -------
    bool
        True if this machine has AVX2 and the pin was requested.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return False
    if " avx2" not in flags:
        return False
    os.environ.setdefault("ATEN_CPU_CAPABILITY", X86_KERNELS.lower())
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", X86_KERNELS)
    os.environ.setdefault("MKL_CBWR", X86_KERNELS)
    return True
