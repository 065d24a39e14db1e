"""Occlusion maps and their off-object share, on models whose answer is known."""
import numpy as np
import pytest
import torch

from precompute.perturb import cell_bounds, cell_cover, off_object_share
from precompute.perturb.occlusion import occlusion_maps


def test_cells_tile_the_side():
    bounds = cell_bounds(30, 4)
    assert bounds[0][0] == 0 and bounds[-1][1] == 30
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert {stop - start for start, stop in bounds} <= {7, 8}


def test_a_model_that_reads_one_corner_has_its_map_peak_there():
    def predict_proba(images):
        # class 0's logit is the brightness of the bottom-left 8 x 8 corner only
        corner = images[:, :, 24:, :8].mean(dim=(1, 2, 3)) * 10
        return torch.softmax(torch.stack([corner, torch.zeros_like(corner)], dim=1), dim=1)

    images = torch.zeros(3, 3, 32, 32)
    images[:, :, 24:, :8] = 1.0  # a bright corner on a dark image
    maps, base = occlusion_maps(predict_proba, images, [0, 0, 0], grid=4, batch_size=7)
    assert maps.shape == (3, 4, 4)
    # covering the corner fills it with the image's mean colour, 64 / 1024 of full brightness
    expected = torch.sigmoid(torch.tensor(10.0)) - torch.sigmoid(torch.tensor(10.0 * 64 / 1024))
    for m in maps:
        assert np.unravel_index(np.argmax(m), m.shape) == (3, 0)
        assert m[3, 0] == pytest.approx(float(expected), abs=1e-5)
        assert np.abs(np.delete(m.ravel(), 12)).max() < 1e-6
    np.testing.assert_allclose(base, torch.softmax(torch.tensor([10.0, 0.0]), 0)[0].item(), rtol=1e-5)


def test_cover_and_off_object_share():
    regions = np.zeros((1, 8, 8), bool)
    regions[0, :4, :4] = True  # the top-left quarter
    cover = cell_cover(regions, 2)
    np.testing.assert_allclose(cover[0], [[1, 0], [0, 0]])
    maps = np.array([[[0.3, 0.1], [-0.5, 0.0]],   # 0.1 of 0.4 off the region
                     [[0.0, 0.0], [0.0, -0.2]]])  # no drop anywhere
    share = off_object_share(maps, np.repeat(cover, 2, axis=0))
    assert share[0] == pytest.approx(0.25) and np.isnan(share[1])
