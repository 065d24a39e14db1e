"""Fisher separability against eqs. (6)-(8) written out; fisher_design; the Tau stage."""
import numpy as np
import pytest

from precompute.stages.separability import MIN_TAU_SAMPLES, Tau, fisher_design, fisher_separability

from .references import reference_fisher


@pytest.mark.parametrize("k", [2, 3, 7])
def test_fisher_separability_matches_equations(k):
    rng = np.random.default_rng(k)
    X = rng.normal(size=(90, 6))
    labels = rng.integers(0, k, size=90)
    X[labels == 0] += 2.0
    assert fisher_separability(X, labels) == pytest.approx(reference_fisher(X, labels), rel=1e-6)


def test_fisher_single_cluster_and_identical_points_are_finite():
    X = np.ones((20, 4))
    assert fisher_separability(X, np.zeros(20, int)) == 0.0
    value = fisher_separability(X, np.arange(20) % 2)
    assert np.isfinite(value)


def test_fisher_design_keeps_the_paper_recipe_for_large_classes():
    design = fisher_design(200, 32, range(2, 31))
    assert design.dimensions == 32 and design.ks == tuple(range(2, 31)) and not design.note
    small = fisher_design(20, 19, range(2, 20))
    assert small.dimensions == 5 and small.ks == tuple(range(2, 11))
    assert all(20 - k >= 2 * small.dimensions for k in small.ks)


def test_fisher_design_refuses_classes_too_small():
    design = fisher_design(MIN_TAU_SAMPLES - 1, 6, range(2, 7))
    assert design.ks == () and "too few samples" in design.note


def _clusterings(X, rng, ks, families):
    labels, counts, names = [], [], []
    for family in families:
        for k in ks:
            labels.append(rng.integers(0, k, size=len(X)))
            counts.append(k)
            names.append(family)
    return labels, counts, names


def test_tau_is_the_mean_fisher_of_its_family_on_the_design():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 16))  # fisher_design: d = 10 dimensions, k <= 20 only
    ks = [2, 5, 20, 25]
    labels, counts, families = _clusterings(X, rng, ks, ["kmeans", "ward"])
    tau = Tau().fit(X, labels, counts, families)
    assert tau.design_ == fisher_design(40, 16, ks) and tau.design_.dimensions == 10
    expected = [reference_fisher(X[:, :10], lab) if k <= 20 else np.nan for lab, k in zip(labels, counts)]
    np.testing.assert_allclose(tau.fisher_, expected, rtol=1e-6)
    np.testing.assert_array_equal(tau.mask_, [True, True, True, False] + [False] * 4)
    assert tau.tau_ == pytest.approx(np.mean(expected[:3]), rel=1e-6)
    assert tau.note_ == ""


def test_tau_of_another_family():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 8))
    labels, counts, families = _clusterings(X, rng, [2, 3], ["kmeans", "ward"])
    tau = Tau(family="ward").fit(X, labels, counts, families)
    assert tau.tau_ == pytest.approx(np.mean(tau.fisher_[2:]))


def test_tau_is_none_with_a_note_for_a_tiny_class():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(6, 5))
    labels, counts, families = _clusterings(X, rng, [2, 3], ["kmeans"])
    tau = Tau().fit(X, labels, counts, families)
    assert tau.tau_ is None and "too few samples" in tau.note_
    assert np.isnan(tau.fisher_).all() and not tau.mask_.any()
