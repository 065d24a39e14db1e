"""Paste primitives of precompute.lab against plain numpy references."""
import numpy as np
import pytest
import torch

from precompute.errors import ConfigError, DataError
from precompute.lab import control_patch, paste, paste_effect


def reference_paste(image, patch, x, y, opacity=1.0):
    """Alpha compositing written out pixel by pixel: image (3, H, W), patch (4, h, w)."""
    out = image.copy()
    _, height, width = image.shape
    _, h, w = patch.shape
    for py in range(h):
        for px in range(w):
            iy, ix = y + py, x + px
            if 0 <= iy < height and 0 <= ix < width:
                a = patch[3, py, px] * opacity
                out[:, iy, ix] = image[:, iy, ix] * (1 - a) + patch[:3, py, px] * a
    return out


def random_inputs(seed, batch=3, size=(3, 12, 10), patch=(4, 5, 4)):
    rng = np.random.default_rng(seed)
    images = rng.random((batch,) + size).astype(np.float64)
    rgba = rng.random(patch).astype(np.float64)
    rgba[3, 0, 0] = 1.0  # some fully opaque and fully transparent pixels
    rgba[3, -1, -1] = 0.0
    return images, rgba


@pytest.mark.parametrize("position", [(2, 3), (0, 0), (-2, -1), (8, 9), (7, -3), (-4, 10), (20, 2), (-5, -5)])
def test_paste_matches_reference_with_cropping(position):
    images, rgba = random_inputs(0)
    out = paste(torch.from_numpy(images), torch.from_numpy(rgba), position)
    for b in range(len(images)):
        expected = reference_paste(images[b], rgba, *position)
        np.testing.assert_allclose(out[b].numpy(), expected, atol=1e-12)


def test_paste_per_sample_positions():
    images, rgba = random_inputs(1, batch=4)
    positions = [(0, 0), (-2, 3), (6, 8), (30, 30)]
    out = paste(torch.from_numpy(images), torch.from_numpy(rgba), positions)
    for b, (x, y) in enumerate(positions):
        np.testing.assert_allclose(out[b].numpy(), reference_paste(images[b], rgba, x, y), atol=1e-12)
    # a tensor of positions works the same
    out_tensor = paste(torch.from_numpy(images), torch.from_numpy(rgba), torch.tensor(positions))
    torch.testing.assert_close(out_tensor, out)


@pytest.mark.parametrize("opacity", [0.0, 0.3, 1.0])
def test_paste_opacity(opacity):
    images, rgba = random_inputs(2)
    out = paste(torch.from_numpy(images), torch.from_numpy(rgba), (3, 4), opacity=opacity)
    for b in range(len(images)):
        np.testing.assert_allclose(out[b].numpy(), reference_paste(images[b], rgba, 3, 4, opacity), atol=1e-12)
    if opacity == 0.0:
        np.testing.assert_array_equal(out.numpy(), images)


def test_paste_does_not_modify_inputs_and_keeps_dtype():
    images, rgba = random_inputs(3)
    images_t, rgba_t = torch.from_numpy(images).float(), torch.from_numpy(rgba).float()
    before_images, before_rgba = images_t.clone(), rgba_t.clone()
    out = paste(images_t, rgba_t, (1, 1))
    torch.testing.assert_close(images_t, before_images, rtol=0, atol=0)
    torch.testing.assert_close(rgba_t, before_rgba, rtol=0, atol=0)
    assert out.dtype == torch.float32 and out.shape == images_t.shape
    assert not torch.equal(out, images_t)


def test_paste_scale_of_an_opaque_patch_covers_the_scaled_box():
    images = torch.zeros(1, 3, 16, 16)
    patch = torch.zeros(4, 3, 2)
    patch[0] = 1.0  # opaque red
    patch[3] = 1.0
    out = paste(images, patch, (4, 5), scale=2.0)
    expected = torch.zeros(1, 3, 16, 16)
    expected[0, 0, 5:11, 4:8] = 1.0
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(paste(images, patch, (4, 5), scale=1.0), paste(images, patch, (4, 5)))


@pytest.mark.parametrize(
    "images, patch, kwargs, error",
    [
        (torch.rand(2, 4, 8, 8), torch.rand(4, 2, 2), {}, DataError),
        (torch.rand(3, 8, 8), torch.rand(4, 2, 2), {}, DataError),
        (torch.rand(2, 3, 8, 8), torch.rand(3, 2, 2), {}, DataError),
        (torch.rand(2, 3, 8, 8), torch.rand(4, 2, 2), {"opacity": 1.5}, ConfigError),
        (torch.rand(2, 3, 8, 8), torch.rand(4, 2, 2), {"scale": 0.0}, ConfigError),
        (torch.rand(2, 3, 8, 8), torch.rand(4, 2, 2), {"position": [(0, 0)] * 3}, ConfigError),
        (torch.rand(2, 3, 8, 8), torch.rand(4, 2, 2), {"position": "top"}, ConfigError),
    ],
)
def test_paste_rejects_bad_input(images, patch, kwargs, error):
    position = kwargs.pop("position", (0, 0))
    with pytest.raises(error):
        paste(images, patch, position, **kwargs)


def test_control_patch_keeps_alpha_and_randomises_colour():
    _, rgba = random_inputs(4, patch=(4, 6, 7))
    rgba = torch.from_numpy(rgba).float()
    control = control_patch(rgba, torch.Generator().manual_seed(0))
    assert control.shape == rgba.shape
    torch.testing.assert_close(control[3], rgba[3], rtol=0, atol=0)
    assert control[:3].min() >= 0 and control[:3].max() < 1
    assert not torch.allclose(control[:3], rgba[:3])
    again = control_patch(rgba, torch.Generator().manual_seed(0))
    other = control_patch(rgba, torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, control, rtol=0, atol=0)
    assert not torch.equal(other[:3], control[:3])


def toy_predict_proba(images):
    """Three classes scored by the mean red, green and blue of the top-left 4x4 pixels."""
    logits = 8.0 * images[:, :, :4, :4].mean(dim=(2, 3))
    return torch.softmax(logits, dim=1)


def reference_effect(before, after, cls):
    """Mean probability change, mean rank change and flip rate, one sample at a time."""
    deltas, ranks, flips = [], [], []
    for p0, p1 in zip(before.tolist(), after.tolist()):
        rank0 = 1 + sum(p > p0[cls] for p in p0)
        rank1 = 1 + sum(p > p1[cls] for p in p1)
        deltas.append(p1[cls] - p0[cls])
        ranks.append(rank0 - rank1)
        flips.append(max(range(len(p1)), key=lambda k: p1[k]) == cls)
    return {"mean_delta_prob": np.mean(deltas), "mean_delta_rank": np.mean(ranks), "flip_rate": np.mean(flips)}


def test_paste_effect_against_reference():
    rng = np.random.default_rng(5)
    images = torch.from_numpy(rng.random((6, 3, 10, 10))).float()
    images[:, 0] *= 0.3  # little red: class 0 starts low
    red = torch.zeros(4, 4, 4)
    red[0] = 1.0
    red[3] = 1.0
    effect = paste_effect(toy_predict_proba, images, 0, red, (0, 0), generator=torch.Generator().manual_seed(0))

    before = toy_predict_proba(images)
    after = toy_predict_proba(torch.from_numpy(np.stack(
        [reference_paste(img.double().numpy(), red.double().numpy(), 0, 0) for img in images])).float())
    expected = reference_effect(before, after, 0)
    for key, value in expected.items():
        assert effect[key] == pytest.approx(value, abs=1e-5)
    assert effect["mean_delta_prob"] > 0.3 and effect["flip_rate"] == 1.0 and effect["mean_delta_rank"] > 0

    control = control_patch(red, torch.Generator().manual_seed(0))
    after_control = toy_predict_proba(paste(images, control, (0, 0)))
    for key, value in reference_effect(before, after_control, 0).items():
        assert effect["control"][key] == pytest.approx(value, abs=1e-5)
    assert effect["control"]["mean_delta_prob"] < effect["mean_delta_prob"]


def test_paste_effect_rejects_bad_class():
    images = torch.rand(2, 3, 8, 8)
    with pytest.raises(ConfigError):
        paste_effect(toy_predict_proba, images, 3, torch.rand(4, 2, 2), (0, 0), generator=torch.Generator())
