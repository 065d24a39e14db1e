"""Background jobs of the artifact lab and the Un-Hans page: a thread pool with progress and cancel.

Why threads, not Dash's background callbacks (which start a process per job): the
lab's jobs share one loaded model (:class:`precompute.lab.ModelSession`). On a GPU,
a process per job would load the weights and initialise CUDA for every experiment.
Each job has its own id, progress and result, so two users' experiments never mix.
The session's lock keeps their model calls apart.
"""
from __future__ import annotations

import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Dict, Optional

from precompute.errors import SprayError
from precompute.lab import Cancelled

__all__ = ["JobState", "Job", "JobManager", "jobs"]

#: ``work(progress, cancel) -> result id``; ``progress(done, total, text="")`` (the text says what runs now).
Work = Callable[[Callable[..., None], threading.Event], str]


class JobState(str, Enum):
    """Where a job is. A ``str`` enum: its value is what :meth:`Job.public` sends to the page."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True once the job ended, whichever way."""
        return self not in (JobState.QUEUED, JobState.RUNNING)


@dataclass
class Job:
    """State of one background job (read by the page every second)."""

    id: str
    kind: str
    state: JobState = JobState.QUEUED
    done: int = 0
    total: int = 0
    text: str = ""
    result: Optional[str] = None
    error: Optional[str] = None
    created: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def public(self) -> Dict[str, object]:
        """JSON-ready status."""
        return {"id": self.id, "kind": self.kind, "state": self.state.value, "done": self.done, "total": self.total,
                "text": self.text, "result": self.result, "error": self.error}


class JobManager:
    """Run lab experiments in the background.

    Parameters
    ----------
    max_workers : int
        Jobs running at once; more wait in a queue.
    keep : int
        Finished jobs remembered (older ones are forgotten).
    """

    def __init__(self, max_workers: int = 2, keep: int = 200):
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="spray-lab")
        self._jobs: Dict[str, Job] = {}
        self._lock = threading.Lock()
        self._keep = keep

    def submit(self, kind: str, work: Work) -> str:
        """Start ``work(progress, cancel) -> result id`` and return the job id.

        ``work`` reports with ``progress(done, total)`` or ``progress(done, total, text)``.
        """
        job = Job(id=uuid.uuid4().hex, kind=kind)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        self._pool.submit(self._run, job, work)
        return job.id

    def _run(self, job: Job, work: Work) -> None:
        if job.cancel.is_set():
            job.state = JobState.CANCELLED
            return
        job.state = JobState.RUNNING

        def progress(done: int, total: int, text: str = "") -> None:
            job.done, job.total, job.text = done, total, str(text or "")

        try:
            job.result = work(progress, job.cancel)
            job.state = JobState.DONE
        except Cancelled:
            job.state = JobState.CANCELLED
        except SprayError as error:
            job.state, job.error = JobState.FAILED, str(error)
        except Exception as error:  # a bug: keep the app alive and say so
            traceback.print_exc()
            job.state, job.error = JobState.FAILED, f"internal error: {type(error).__name__}: {error}"

    def status(self, job_id: str) -> Optional[Dict[str, object]]:
        """Public status of a job, or None for unknown ids."""
        job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        return job.public() if job else None

    def cancel(self, job_id: str) -> bool:
        """Ask a job to stop at its next batch; True if it was still queued or running."""
        job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None or job.state.finished:
            return False
        job.cancel.set()
        return True

    def _forget_old(self) -> None:
        finished = [job for job in self._jobs.values() if job.state.finished]
        for job in sorted(finished, key=lambda j: j.created)[: max(0, len(finished) - self._keep)]:
            del self._jobs[job.id]


jobs = JobManager()
