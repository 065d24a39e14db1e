"""The analysis's threads: a stage fitted in the background, imports ahead."""
import sys
import threading

import pytest

from precompute.stages.base import Stage
from precompute.stages.concurrency import BackgroundFit, ImportAhead, single_thread


class Recorder(Stage):
    def fit(self, value):
        self.value_ = value
        self.thread_ = threading.current_thread()
        return self


class Broken(Stage):
    def fit(self, value):
        raise RuntimeError("broken stage")


def test_background_fit_runs_on_another_thread_and_returns_the_stage():
    job = BackgroundFit(Recorder(), 42)
    stage = job.join()
    assert stage.value_ == 42 and stage.thread_ is not threading.current_thread()
    assert job.seconds >= 0.0


def test_background_errors_reach_the_caller():
    with pytest.raises(RuntimeError, match="broken stage"):
        BackgroundFit(Broken(), 1).join()


def test_import_ahead_imports_and_skips_missing_modules():
    ahead = ImportAhead(["no_such_module_for_spray", "colorsys"])
    ahead.join()
    assert "colorsys" in sys.modules and "no_such_module_for_spray" not in sys.modules


def test_single_thread_limits_blas():
    from threadpoolctl import threadpool_info

    with single_thread():
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
