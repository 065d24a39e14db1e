"""Object masks: paths, checks with one-line errors, the run's geometry, packing and outlines."""
import io

import numpy as np
import pytest
from PIL import Image

from precompute.errors import ConfigError
from precompute.masks import check_masks, load_mask, mask_path, outline_thumbnail, pack_masks, unpack_masks


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def test_mask_path_mirrors_the_image_path_with_png():
    assert mask_path("/m", "cat/sub/x.JPEG").as_posix() == "/m/cat/sub/x.png"


def test_check_masks_names_the_first_missing_mask_and_counts_them(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        _save(tmp_path / "data" / "cat" / name, np.zeros((20, 30, 3), np.uint8))
    _save(tmp_path / "masks" / "cat" / "a.png", np.zeros((20, 30), np.uint8))
    paths = ["cat/a.png", "cat/b.png", "cat/c.png"]
    with pytest.raises(ConfigError, match=r"no mask for cat/b.png .*2 of 3 images have none") as error:
        check_masks(tmp_path / "masks", tmp_path / "data", paths)
    assert "\n" not in str(error.value)


def test_check_masks_refuses_a_mask_of_another_size(tmp_path):
    _save(tmp_path / "data" / "cat" / "a.png", np.zeros((20, 30, 3), np.uint8))
    _save(tmp_path / "masks" / "cat" / "a.png", np.zeros((20, 20), np.uint8))
    with pytest.raises(ConfigError, match=r"is 20x20 pixels but its image cat/a.png is 30x20"):
        check_masks(tmp_path / "masks", tmp_path / "data", ["cat/a.png"])
    (tmp_path / "masks" / "cat" / "a.png").write_bytes(b"not an image")
    with pytest.raises(ConfigError, match="not a readable image"):
        check_masks(tmp_path / "masks", tmp_path / "data", ["cat/a.png"])


def test_load_mask_follows_the_images_resize_and_centre_crop(tmp_path):
    mask = np.zeros((40, 80), np.uint8)  # landscape: the crop keeps the middle 40 x 40 columns 20..60
    mask[:, 30:50] = 1  # nonzero = object, whatever the value
    _save(tmp_path / "cat" / "a.png", mask)
    loaded = load_mask(tmp_path, "cat/a.png", 20)  # resized by half, then cropped
    assert loaded.shape == (20, 20) and loaded.dtype == bool
    assert loaded[:, 5:15].all() and not loaded[:, :5].any() and not loaded[:, 15:].any()
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[2:4, 2:4, 1] = 200
    _save(tmp_path / "cat" / "b.png", rgb)
    assert load_mask(tmp_path, "cat/b.png", None).sum() == 4


def test_packed_masks_round_trip_at_an_eighth_of_a_byte_a_pixel():
    rng = np.random.default_rng(0)
    masks = rng.random((5, 13, 11)) > 0.5
    packed = pack_masks(masks)
    assert packed.shape == (5, (13 * 11 + 7) // 8) and packed.dtype == np.uint8
    np.testing.assert_array_equal(unpack_masks(packed, (13, 11)), masks)


def test_outline_is_transparent_except_on_the_contour():
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    image = Image.open(io.BytesIO(outline_thumbnail(mask, 128)))
    assert image.format == "WEBP" and image.size == (128, 128)
    alpha = np.asarray(image.convert("RGBA"))[..., 3]
    assert alpha[64, 64] == 0 and alpha[0, 0] == 0  # inside and outside
    assert alpha[32:96, 32].min() > 0 and alpha[32, 32:96].min() > 0  # the left and top edges
