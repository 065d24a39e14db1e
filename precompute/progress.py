"""Progress bars, and log lines that never break them.

A line printed while a tqdm bar is on the terminal lands in the middle of the bar
(``images:  40%|████ | 12/30skipped ...``). :func:`bar_safe` wraps a run's ``log`` so
that every line is written in tqdm's external write mode: the bars are cleared, the
line is written on a line of its own, and the bars are drawn again below it.
:func:`warnings_to` sends Python warnings raised during a run the same way.
"""
from __future__ import annotations

import contextlib
import sys
import warnings
from typing import Callable, Iterator

__all__ = ["progress_bar", "bar_safe", "warnings_to"]


def progress_bar(iterable=None, **kwargs):
    """A tqdm bar (notebook-aware) as the runs draw them: a redraw at most every half second.

    Parameters
    ----------
    iterable : iterable, optional
    **kwargs
        Passed to ``tqdm`` (``total``, ``desc``, ``unit``, ``disable``, ``position``...);
        they override the defaults above.
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, **{"dynamic_ncols": True, "mininterval": 0.5, **kwargs})


def bar_safe(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log``, made to write its lines above the progress bars instead of into them.

    Parameters
    ----------
    log : callable
        Writes one message (e.g. ``print`` to stderr). It may write to stdout or
        stderr: the bars on either are cleared while it runs.

    Returns
    -------
    callable
        ``message -> None``; wrapping it again returns it unchanged.
    """
    if getattr(log, "bar_safe", False):
        return log
    from tqdm.auto import tqdm

    def write(message: str) -> None:
        with tqdm.external_write_mode(file=sys.stderr):
            log(message)
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (AttributeError, OSError, ValueError):
                    pass

    write.bar_safe = True
    return write


@contextlib.contextmanager
def warnings_to(write: Callable[[str], None]) -> Iterator[None]:
    """Within the block, show Python warnings as one ``warning: ...`` line through ``write``.

    The warning filters are those in force (a warning shown once is still shown
    once); only where a shown warning goes changes. Both are restored afterwards.
    """
    with warnings.catch_warnings():
        def show(message, category, filename, lineno, file=None, line=None):
            write(f"warning: {message}")

        warnings.showwarning = show
        yield
