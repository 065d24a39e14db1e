"""CUDA's TF32 switches are set, lifted for the exact check and restored (settable without a GPU)."""
from __future__ import annotations

import pytest
import torch

from precompute.errors import ConfigError
from precompute.lrp.precision import TF32Switch, resolve_device


def _switches():
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.fixture
def saved_switches():
    before = _switches()
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("enabled", [False, True])
def test_tf32_switch_takes_lifts_and_restores(saved_switches, enabled):
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = (True, False)
    switch = TF32Switch()
    with switch.off():  # not taken: nothing changes
        assert _switches() == (True, False)
    switch.take(enabled)
    assert switch.taken and _switches() == (enabled, enabled)
    with switch.off():
        assert _switches() == (False, False)
    assert _switches() == (enabled, enabled)
    switch.restore()
    assert not switch.taken and _switches() == (True, False)
    switch.restore()  # a second restore changes nothing
    assert _switches() == (True, False)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="invalid device 'gpu0'"):
        resolve_device("gpu0")
