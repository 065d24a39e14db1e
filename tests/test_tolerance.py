"""The scaled tolerance of tests/helpers/tolerance.py: summation-order noise passes, real errors fail."""
import numpy as np
import pytest

from tests.helpers.tolerance import assert_close_to_scale


def test_order_noise_on_a_small_value_next_to_a_large_one_passes():
    # The Intel Xeon case of issue 17: one small logit off by 1.36e-6 beside logits of ~10.
    expected = np.array([[12.5, -8.25, 0.0123]], dtype=np.float32)
    actual = expected + np.array([[0.0, 0.0, 1.36e-6]], dtype=np.float32)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)  # the old fixed tolerance
    assert_close_to_scale(actual, expected, rtol=1e-5, scale_tol=1e-5)


def test_a_real_difference_fails():
    expected = np.array([12.5, -8.25, 0.0123])
    with pytest.raises(AssertionError):
        assert_close_to_scale(expected + [0.0, 0.0, 0.01], expected)
    with pytest.raises(AssertionError):
        assert_close_to_scale(expected * 1.001, expected)
