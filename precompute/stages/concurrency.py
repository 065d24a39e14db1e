"""The threads of one class's analysis: imports ahead, a stage in the background, single-threaded BLAS.

One class is analysed in one process on (usually) two cores. After the distances, every
stage works on ``n x q`` arrays, where BLAS and OpenMP threads that spin on a shared
machine cost more than they save, so the stages run with one thread each
(:func:`single_thread`) and the second core gets a whole stage instead
(:class:`BackgroundFit`, for stages marked ``background``). The core count comes from
:func:`precompute.threads.usable_cores`.
"""
from __future__ import annotations

import importlib
import threading
import time
from typing import Optional, Sequence

__all__ = ["single_thread", "ImportAhead", "BackgroundFit"]


def single_thread():
    """Context limiting BLAS and OpenMP (k-means) to one thread."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


class ImportAhead:
    """Import the stages' libraries (each stage class's ``imports``) on a second thread.

    scikit-learn and openTSNE take about a second to import; the distance stage,
    meanwhile, spends its time in BLAS without the GIL. Joined before the clusterings.

    Parameters
    ----------
    modules : sequence of str
        Module names; one that fails to import is skipped (the error resurfaces where
        the stage imports it).
    """

    def __init__(self, modules: Sequence[str]):
        def work() -> None:
            for module in modules:
                try:
                    importlib.import_module(module)
                except Exception:  # resurfaces where the stage imports it
                    pass

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()


class BackgroundFit:
    """``stage.fit(*args)`` on a second thread while the calling thread goes on.

    Only for stages marked ``background = True``: their heavy loops release the GIL
    (openTSNE's Barnes-Hut gradient), so the two threads use two cores.

    Attributes
    ----------
    seconds : float
        How long the fit took on its thread (set when it ends).
    """

    def __init__(self, stage, *args):
        self.seconds = 0.0
        self._stage = stage
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, args=args, daemon=True)
        self._thread.start()

    def _run(self, *args) -> None:
        started = time.perf_counter()
        try:
            self._stage.fit(*args)
        except BaseException as error:  # re-raised by join() in the calling thread
            self._error = error
        self.seconds = time.perf_counter() - started

    def join(self):
        """Wait for the fit; return the fitted stage, or raise the fit's error here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._stage
