"""Comparisons of float arrays whose summation order may differ (batch size, threads, CPU).

A fixed ``atol`` is wrong for such results: float32 sums of values of size ``s`` carry
rounding errors of about ``s * 1e-7`` whatever their own size, so a logit of 0.01 next
to one of 40 can be off by several ``1e-6`` on one CPU and exact on another. These
helpers scale the absolute tolerance by the largest magnitude of the expected array.
"""
from __future__ import annotations

import numpy as np

__all__ = ["assert_close_to_scale"]


def assert_close_to_scale(actual, expected, rtol: float = 1e-5, scale_tol: float = 1e-5) -> None:
    """Assert ``|actual - expected| <= rtol * |expected| + scale_tol * max|expected|`` elementwise.

    Parameters
    ----------
    actual, expected : array-like of the same shape
    rtol : float
        Relative tolerance per element.
    scale_tol : float
        Absolute tolerance as a fraction of the largest ``|expected|`` (the scale of the
        sums that produced the values).
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=scale_tol * scale)
