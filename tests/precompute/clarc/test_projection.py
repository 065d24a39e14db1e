"""P-ClArC's projection against the plain formula, and its hooks in a model."""
import numpy as np
import pytest
import torch
from torch import nn

from precompute.clarc import LayerRef, Projection, default_layer, fit_concept, project_out, resolve_layer
from precompute.errors import ConfigError


def test_projection_removes_exactly_the_cav_component():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 12))
    v = rng.normal(size=12)
    v /= np.linalg.norm(v)
    r = 0.37
    expected = a - np.outer(a @ v, v) + r * v  # (I - vvᵀ) a + r v, written the other way round
    got = project_out(torch.tensor(a), torch.tensor(v), r, mode="full").numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got @ v, np.full(7, r), atol=1e-12)  # the component along v is the reference
    residual_in = a - np.outer(a @ v, v)
    residual_out = got - np.outer(got @ v, v)
    np.testing.assert_allclose(residual_out, residual_in, atol=1e-12)  # everything orthogonal to v is kept


def test_excess_projection_lowers_only_what_lies_beyond_the_reference():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(50, 6))
    v = np.eye(6)[1]
    r = 0.2
    got = project_out(torch.tensor(a), torch.tensor(v), r, mode="excess").numpy()
    expected = a - np.outer(np.maximum(a @ v - r, 0), v)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    below = a @ v <= r
    assert below.any() and (~below).any()
    np.testing.assert_array_equal(got[below], a[below])  # no artifact evidence: untouched
    np.testing.assert_allclose(got[~below] @ v, r, atol=1e-12)
    with pytest.raises(ValueError, match="unknown projection mode"):
        project_out(torch.tensor(a), torch.tensor(v), r, mode="half")


def test_projection_keeps_the_shape_of_conv_activations():
    a = torch.randn(3, 4, 5, 5)
    v = torch.randn(100)
    v /= v.norm()
    out = project_out(a, v, 0.0, mode="full")
    assert out.shape == a.shape
    assert torch.allclose(out.flatten(1) @ v, torch.zeros(3), atol=1e-5)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def test_default_layer_is_the_input_of_the_last_linear():
    assert str(default_layer(_model())) == "3:input"
    with pytest.raises(ConfigError, match="no nn.Linear"):
        default_layer(nn.Sequential(nn.Conv2d(3, 3, 3)))


def test_resolve_layer_refuses_unknown_names_and_ruled_outputs():
    model = _model()
    assert resolve_layer(model, "2") == LayerRef("2", "output")
    assert resolve_layer(model, "1:input") == LayerRef("1", "input")
    with pytest.raises(ConfigError, match="no module of that name"):
        resolve_layer(model, "features.99")
    with pytest.raises(ConfigError, match="carries its own LRP rule"):
        resolve_layer(model, "1")


@pytest.mark.parametrize("mode", ["full", "excess"])
@pytest.mark.parametrize("layer", ["3:input", "2"])
def test_installed_projection_equals_the_formula_inside_the_model(layer, mode):
    model = _model()
    x = torch.randn(5, 3, 2, 2)
    hidden = torch.relu(model[1](x.flatten(1)))
    v = torch.randn(8)
    v /= v.norm()
    expected = model[3](project_out(hidden, v, 0.5, mode))
    handle = Projection(layer=layer, vector=v, reference=0.5, mode=mode).install(model)
    try:
        assert torch.allclose(model(x), expected, atol=1e-6)
    finally:
        handle.remove()
    assert torch.allclose(model(x), model[3](hidden), atol=1e-6)  # removed: the original model again


def test_projection_state_round_trips_through_weights_only_load(tmp_path):
    v = torch.randn(8)
    projection = Projection(layer="3:input", vector=v / v.norm(), reference=1.25, mode="full")
    torch.save([projection.state()], tmp_path / "projection.pt")
    [loaded] = [Projection.from_state(s) for s in torch.load(tmp_path / "projection.pt", weights_only=True)]
    assert loaded.layer == "3:input" and loaded.reference == pytest.approx(1.25) and loaded.mode == "full"
    assert torch.equal(loaded.vector, projection.vector)


def test_signal_pattern_is_the_normalised_mean_difference_and_svm_separates():
    rng = np.random.default_rng(1)
    clean = rng.normal(size=(60, 6))
    artifact = rng.normal(size=(20, 6))
    artifact[:, 2] += 3.0
    concept = fit_concept(artifact, clean, layer="x", method="signal")
    diff = artifact.mean(0) - clean.mean(0)
    np.testing.assert_allclose(concept.vector, diff / np.linalg.norm(diff), rtol=1e-5)
    assert concept.reference == pytest.approx(float(clean.mean(0) @ concept.vector), rel=1e-5)
    assert concept.scores(artifact).mean() > 2 > concept.scores(clean).mean()
    svm = fit_concept(artifact, clean, layer="x", method="svm")
    assert abs(svm.vector[2]) == pytest.approx(np.abs(svm.vector).max())
    with pytest.raises(ConfigError):
        fit_concept(artifact[:0], clean, layer="x")
    with pytest.raises(ConfigError, match="unknown CAV method"):
        fit_concept(artifact, clean, layer="x", method="nope")
