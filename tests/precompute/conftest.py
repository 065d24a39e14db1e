"""Fixtures shared by the precompute tests."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny convolutions run about 100x slower with 2 torch threads on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
