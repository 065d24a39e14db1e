"""Scanning ImageFolders and decoding every kind of image file."""
import io

import numpy as np
import pytest
from PIL import Image

from precompute.data import ClassImages, collate_skipping, load_rgb, resize_center_crop, scan_image_folder
from precompute.errors import ConfigError, DataError


def save(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("zebra", "apple"):
        for i in range(3):
            save(tmp_path / name / f"{i}.png", Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)))
    (tmp_path / "apple" / "notes.txt").write_text("not an image")
    (tmp_path / "apple" / "nested").mkdir()
    save(tmp_path / "apple" / "nested" / "x.png", Image.new("RGB", (8, 8)))
    (tmp_path / ".hidden").mkdir()
    return tmp_path


def test_scan_sorted_labels_and_skips(folder):
    index = scan_image_folder(folder)
    assert index.label_names == ["apple", "zebra"]
    assert [(c.name, c.label) for c in index.classes] == [("apple", 0), ("zebra", 1)]
    assert index.classes[0].paths == ["apple/0.png", "apple/1.png", "apple/2.png", "apple/nested/x.png"]
    assert index.skipped == [("apple/notes.txt", "not an image file (unknown extension)")]


def test_scan_subset_and_unknown_class(folder):
    index = scan_image_folder(folder, classes=["zebra"])
    assert [c.name for c in index.classes] == ["zebra"]
    assert index.classes[0].label == 1, "labels come from the full class list"
    with pytest.raises(ConfigError, match="no such class"):
        scan_image_folder(folder, classes=["zebra", "yak"])


def test_scan_with_class_index(folder, tmp_path):
    index_file = tmp_path / "index.json"
    index_file.write_text('{"zebra": 3, "apple": 7}')
    index = scan_image_folder(folder, class_index=index_file)
    assert [(c.name, c.label) for c in index.classes] == [("zebra", 3), ("apple", 7)]
    assert len(index.label_names) == 8


def test_scan_missing_or_empty_root(tmp_path):
    with pytest.raises(DataError, match="not found"):
        scan_image_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="no class folders"):
        scan_image_folder(tmp_path)


def encoded(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    rng = np.random.default_rng(1)
    base = Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8))
    if mode == "I;16":
        image = Image.fromarray((rng.integers(0, 65535, (10, 12))).astype(np.uint16))
    else:
        image = base.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I", "F", "I;16") else "PNG"
    path = tmp_path / f"img.{fmt.lower()}"
    path.write_bytes(encoded(image, fmt))
    rgb = load_rgb(path)
    assert rgb.mode == "RGB" and rgb.size == (12, 10)


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path):
    values = np.full((4, 4), 65535, np.uint16)
    values[0, 0] = 0
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    rgb = np.asarray(load_rgb(path))
    assert rgb[1, 1, 0] == 255 and rgb[0, 0, 0] == 0


def test_transparent_pixels_composite_on_white(tmp_path):
    image = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    path = save(tmp_path / "clear.png", image)
    assert np.asarray(load_rgb(path))[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("content", [b"", b"hello, not an image", "truncated"])
def test_broken_files_raise_data_error(tmp_path, content):
    path = tmp_path / "bad.png"
    if content == "truncated":
        full = encoded(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)), "PNG")
        content = full[: len(full) // 2]
    path.write_bytes(content)
    with pytest.raises(DataError, match="bad.png"):
        load_rgb(path)


def test_resize_center_crop():
    image = Image.new("RGB", (40, 20))
    assert resize_center_crop(image, 16).size == (16, 16)
    assert resize_center_crop(image, None).size == (40, 20)


def test_class_images_and_collate(folder):
    (folder / "zebra" / "3.png").write_bytes(b"junk")
    index = scan_image_folder(folder, classes=["zebra"])
    dataset = ClassImages(folder, index.classes[0].paths, size=16)
    indices, images, failures = collate_skipping([dataset[i] for i in range(len(dataset))])
    assert indices.tolist() == [0, 1, 2]
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
    assert len(failures) == 1 and failures[0][0] == 3 and "3.png" in failures[0][1]
