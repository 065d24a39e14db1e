"""The processes and threads of a run: DataLoader workers that die with their parent, and torch's thread count.

A DataLoader worker whose parent is killed (``kill -9``, the OOM killer) does not
notice by itself: torch's watchdog looks only between batches, and a worker whose
finished batch waits in a full pipe (that its sibling workers keep open) blocks at
exit for good, holding its memory. :func:`die_with_parent` makes the kernel kill
it with the parent instead.

torch's intra-op thread pool defaults to every core, whatever else runs: on a busy
or small machine the attribution then competes with its own DataLoader workers.
:func:`attribution_threads` chooses the number deliberately.
"""
from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import threading
import time
from typing import Callable, Optional

from .threads import usable_cores

__all__ = ["die_with_parent", "worker_init", "attribution_threads"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_SECONDS = 0.5
"""How often the portable fallback checks that the parent is alive."""


def _set_parent_death_signal(signum: int) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent dies; False where prctl is missing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # libc is loaded into every Linux process
    except (OSError, AttributeError):
        return False
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0


def _parent_alive(parent_pid: int) -> bool:
    """Whether ``parent_pid`` is still this process's parent (and, on Windows, still running)."""
    if os.name == "nt":  # a Windows child keeps its parent's pid after the parent exits
        synchronize, wait_timeout = 0x00100000, 0x00000102
        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(synchronize, False, parent_pid)
        if not handle:
            return False
        try:
            return kernel32.WaitForSingleObject(handle, 0) == wait_timeout
        finally:
            kernel32.CloseHandle(handle)
    return os.getppid() == parent_pid


def _exit_when_orphaned(parent_pid: int) -> None:
    while _parent_alive(parent_pid):
        time.sleep(POLL_SECONDS)
    os._exit(1)


def die_with_parent(parent_pid: int, worker_id: Optional[int] = None) -> None:
    """Make this process end as soon as process ``parent_pid`` dies.

    On Linux the kernel sends SIGKILL to this process when its parent dies
    (``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread checks the parent every
    :data:`POLL_SECONDS` and exits. If the parent died already, before this was set
    up, the process exits at once.

    Parameters
    ----------
    parent_pid : int
        The pid of the parent, taken in the parent before the child started (the
        child cannot tell a live parent from init, or a subreaper, that adopted it).
    worker_id : int, optional
        Ignored: the signature of a DataLoader ``worker_init_fn`` once ``parent_pid``
        is bound (see :func:`worker_init`).

    Notes
    -----
    Linux ties the signal to the parent *thread* that started this process: the
    thread that iterates the DataLoader must outlive its workers, as it does in
    :func:`precompute.pipeline.local.run_local`.
    """
    if _set_parent_death_signal(signal.SIGKILL):
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)
        return
    if not _parent_alive(parent_pid):
        os._exit(1)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), name="spray-parent-watch",
                     daemon=True).start()


def worker_init() -> Callable[[int], None]:
    """A DataLoader ``worker_init_fn`` that makes each worker die with this process.

    Call it in the process that iterates the DataLoader (a worker's parent). The
    result pickles, so it also works with the ``spawn`` start method.
    """
    return functools.partial(die_with_parent, os.getpid())


def attribution_threads(workers: int, cores: Optional[int] = None, environ=None) -> int:
    """torch's intra-op thread count while a run attributes: the cores its DataLoader workers leave.

    Each DataLoader worker decodes images on a core of its own (torch makes each
    worker single-threaded), so attribution gets ``cores - workers`` threads, at least
    1. ``OMP_NUM_THREADS``, when set, is an upper bound: whoever set it has told
    every library how many threads to use.

    Parameters
    ----------
    workers : int
        DataLoader worker processes of the run (0: the images are decoded in this thread).
    cores : int, optional
        Usable cores; default :func:`precompute.threads.usable_cores` (the CPU affinity).
    environ : mapping, optional
        Environment to read ``OMP_NUM_THREADS`` from; default ``os.environ``.

    Returns
    -------
    int
        At least 1.
    """
    cores = usable_cores() if cores is None else cores
    threads = max(1, cores - max(0, workers))
    limit = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "")
    try:
        threads = min(threads, int(limit)) if int(limit) >= 1 else threads
    except ValueError:
        pass
    return max(1, threads)
