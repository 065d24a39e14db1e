"""Heatmap colouring and thumbnail encoding."""
import io

import numpy as np
import pytest
from PIL import Image

from precompute.thumbs import encode_rgb, heatmap_rgb, heatmap_thumbnail, image_thumbnail


def test_colour_map_is_diverging_with_black_zero():
    heatmap = np.array([[-1.0, -0.5, 0.0, 0.5, 1.0]], np.float32)
    rgb = heatmap_rgb(heatmap).astype(int)[0]
    neg_strong, neg, zero, pos, pos_strong = rgb
    assert zero.sum() < 10, "zero relevance is black"
    assert pos[0] > pos[2] and pos[0] > 100, "positive is red"
    assert pos_strong[0] > 200 and pos_strong[1] > 200, "strong positive is yellow/white"
    assert neg[2] > neg[0] and neg[2] > 100, "negative is blue"
    assert neg_strong[1] > 200 and neg_strong[2] > 200, "strong negative is cyan"


def test_scale_is_symmetric_per_map():
    small = heatmap_rgb(np.array([[0.0, 0.01]]))
    large = heatmap_rgb(np.array([[0.0, 100.0]]))
    np.testing.assert_array_equal(small, large)


@pytest.mark.parametrize("values", [np.zeros((8, 8)), np.full((8, 8), np.nan)])
def test_degenerate_maps_render(values):
    rgb = heatmap_rgb(values)
    assert rgb.shape == (8, 8, 3) and rgb.max() < 10


def test_thumbnails_decode_at_requested_size():
    image = np.random.default_rng(0).integers(0, 255, (224, 300, 3), dtype=np.uint8)
    decoded = Image.open(io.BytesIO(image_thumbnail(image, 128)))
    assert decoded.format == "WEBP" and max(decoded.size) == 128
    small = Image.open(io.BytesIO(heatmap_thumbnail(np.random.default_rng(1).normal(size=(64, 64)), 128)))
    assert small.size == (64, 64), "never upscaled"
    assert len(encode_rgb(np.zeros((16, 16, 3), np.uint8))) > 0


def test_built_in_coldnhot_palette_is_zennits():
    from zennit.image import palette

    from precompute.thumbs import _palette

    expected = np.asarray(palette("coldnhot"), dtype=np.uint8).reshape(256, 3)
    np.testing.assert_array_equal(_palette("coldnhot"), expected)
    np.testing.assert_array_equal(_palette("bwr"), np.asarray(palette("bwr"), dtype=np.uint8).reshape(256, 3))
