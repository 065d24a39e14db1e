"""The lab's background job runner: progress, results, cancel, failures."""
import threading
import time

from precompute.errors import DataError
from precompute.lab import Cancelled
from spray_dash.jobs import JobManager


def wait(manager, job_id, states=("done", "failed", "cancelled"), timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = manager.status(job_id)
        if status["state"] in states:
            return status
        time.sleep(0.01)
    raise AssertionError(f"job stuck in {manager.status(job_id)}")


def test_progress_and_result():
    manager = JobManager(max_workers=1)
    release = threading.Event()

    def work(progress, cancel):
        progress(3, 10)
        release.wait(5)
        return "exp-1"

    job = manager.submit("paste", work)
    running = wait(manager, job, states=("running",))
    deadline = time.time() + 5
    while manager.status(job)["done"] != 3 and time.time() < deadline:
        time.sleep(0.01)
    assert running["kind"] == "paste" and manager.status(job)["total"] == 10
    release.set()
    assert wait(manager, job) == {"id": job, "kind": "paste", "state": "done", "done": 3, "total": 10,
                                  "text": "", "result": "exp-1", "error": None}


def test_progress_may_say_what_runs_now():
    manager = JobManager(max_workers=1)

    def work(progress, cancel):
        progress(1, 4, "concept at fc:input")
        progress(2, 4, "verifying")
        return "v-1"

    status = wait(manager, manager.submit("unhans", work))
    assert (status["done"], status["total"], status["text"], status["result"]) == (2, 4, "verifying", "v-1")


def test_cancel_stops_at_the_next_check():
    manager = JobManager(max_workers=1)

    def work(progress, cancel):
        for step in range(1000):
            if cancel.is_set():
                raise Cancelled()
            progress(step, 1000)
            time.sleep(0.005)
        return "never"

    job = manager.submit("paste", work)
    wait(manager, job, states=("running",))
    assert manager.cancel(job)
    assert wait(manager, job)["state"] == "cancelled"
    assert not manager.cancel(job), "a finished job cannot be cancelled"


def test_failures_become_messages():
    manager = JobManager(max_workers=2)

    def user_error(progress, cancel):
        raise DataError("x.png: the original image is gone")

    def bug(progress, cancel):
        return 1 / 0

    first, second = manager.submit("paste", user_error), manager.submit("paste", bug)
    assert wait(manager, first)["error"] == "x.png: the original image is gone"
    failed = wait(manager, second)
    assert failed["state"] == "failed" and "ZeroDivisionError" in failed["error"]
    assert manager.status("nope") is None and manager.status(None) is None


def test_jobs_are_isolated():
    manager = JobManager(max_workers=2)
    ids = [manager.submit("paste", lambda progress, cancel, k=k: f"result-{k}") for k in range(6)]
    assert [wait(manager, job)["result"] for job in ids] == [f"result-{k}" for k in range(6)]


def test_job_states_are_an_enum_sent_as_plain_strings():
    from spray_dash.jobs import JobState

    assert [state.value for state in JobState] == ["queued", "running", "done", "failed", "cancelled"]
    assert [state.finished for state in JobState] == [False, False, True, True, True]
    manager = JobManager(max_workers=1)
    status = wait(manager, manager.submit("paste", lambda progress, cancel: "exp"))
    assert type(status["state"]) is str and JobState(status["state"]) is JobState.DONE
