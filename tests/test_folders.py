"""Image/mask folders and CamVid: matching, value checks, binary views with ignored void, caching."""

import contextlib
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iou_lib.config import data_dir
from iou_lib.data import load_splits
from iou_lib.data.folders import (
    CAMVID_CLASSES,
    CAMVID_IGNORE,
    FolderSegmentation,
    camvid,
    camvid_class_index,
    camvid_root,
)
from iou_lib.data.transforms import BINARY_IGNORE, augment
from iou_lib.train import DataSpec


def _write(root: Path, stem: str, mask: np.ndarray, image_size=None, suffix=".png") -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    h, w = image_size or mask.shape
    rng = np.random.default_rng(len(stem))
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"{stem}{suffix}")
    Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"{stem}.png")


def test_binary_masks_0_255_and_0_1_and_jpeg(tmp_path):
    m = np.zeros((8, 10), np.uint8)
    m[2:4, 3:6] = 255
    _write(tmp_path, "a", m)
    _write(tmp_path, "b", (m > 0).astype(np.uint8), suffix=".jpg")
    ds = FolderSegmentation(tmp_path)
    assert len(ds) == 2 and ds.stems == ["a", "b"] and ds.num_classes == 1
    x, y = ds[0]
    assert x.shape == (3, 8, 10) and int(y.sum()) == 6 and set(y.unique().tolist()) == {0, 1}
    assert torch.equal(ds.labels[0], ds.labels[1])


def test_class_masks_with_ignore_and_scale(tmp_path):
    m = np.arange(16 * 16).reshape(16, 16) % 4
    m[0] = 9
    _write(tmp_path, "a", m)
    ds = FolderSegmentation(tmp_path, num_classes=4, ignore_index=9, scale=2)
    assert ds.images.shape == (1, 3, 8, 8) and ds.ignore_index == 9
    assert torch.equal(ds.labels[0].long(), torch.from_numpy(m[1::2, 1::2]))


def test_binary_view_of_folder_masks_maps_ignore(tmp_path):
    m = np.zeros((4, 4), np.uint8)
    m[0, 0], m[1, 1] = 1, 7
    _write(tmp_path, "a", m)
    ds = FolderSegmentation(tmp_path, ignore_index=7)
    assert (
        ds.ignore_index == BINARY_IGNORE and ds.labels[0, 1, 1] == BINARY_IGNORE and ds.labels[0, 0, 0] == 1
    )


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [
        ("missing", FileNotFoundError, "does not exist"),
        ("unmatched", ValueError, r"images without a mask \['b'\].*masks without an image \['c'\]"),
        ("range", ValueError, r"mask .*a.png has values \[5\] out of range: expected 0/1 or 0/255"),
        ("classes", ValueError, r"values \[5\] out of range: expected class indices 0..2"),
        ("size", ValueError, r"image a.png is 6x4 but its mask a.png is 5x4"),
        ("sizes", ValueError, r"images have different sizes .*--size H W"),
        ("rgb", ValueError, "must be single-channel"),
        ("truncated", ValueError, r"cannot read image .*a\.png: image file is truncated"),
        ("not_image", ValueError, r"cannot read mask .*a\.png"),
    ],
)
def test_clear_errors(tmp_path, setup, error, message):
    m = np.zeros((4, 5), np.uint8)
    kw = {}
    if setup == "missing":
        root = tmp_path / "nope"
    else:
        root = tmp_path
        _write(root, "a", m)
    if setup == "unmatched":
        _write(root, "b", m)
        (root / "masks" / "b.png").rename(root / "masks" / "c.png")
    elif setup in ("range", "classes"):
        m[0, 0] = 5
        _write(root, "a", m)
        kw = {"num_classes": 3} if setup == "classes" else {}
    elif setup == "size":
        _write(root, "a", m, image_size=(4, 6))
    elif setup == "sizes":
        _write(root, "b", np.zeros((6, 6), np.uint8))
    elif setup == "rgb":
        Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(root / "masks" / "a.png")
    elif setup == "truncated":  # a real PNG cut short: PIL reads the header, then fails while decoding
        path = root / "images" / "a.png"
        rng = np.random.default_rng(0)  # noise does not compress: the pixel data spans several chunks
        Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:2000])
    elif setup == "not_image":
        (root / "masks" / "a.png").write_bytes(b"not a png")
    with pytest.raises(error, match=message):
        FolderSegmentation(root, **kw)


def test_binary_01_masks_with_ignore_255_and_an_empty_image(tmp_path):
    """With ignore 255, a 0/1 mask holds {0, 1, 255}, and one without foreground {0, 255}: that is not a
    0/255 mask; its 255 pixels stay ignored and never become foreground."""
    fov = np.zeros((6, 6), np.uint8)
    fov[:, :2] = 255  # outside the field of view
    empty, full = fov.copy(), fov.copy()
    full[3:5, 3:5] = 1
    _write(tmp_path, "a_empty", empty)
    _write(tmp_path, "b_full", full)
    ds = FolderSegmentation(tmp_path, ignore_index=255)
    assert ds.ignore_index == BINARY_IGNORE
    for labels, mask in zip(ds.labels, (empty, full), strict=True):
        assert torch.equal(labels == BINARY_IGNORE, torch.from_numpy(fov == 255))
        assert torch.equal(labels == 1, torch.from_numpy(mask == 1))
    assert ds.foreground_fraction() == pytest.approx(4 / 48)  # 4 of the 2 * 24 valid pixels


def test_0_255_masks_with_another_ignore_value(tmp_path):
    m = np.zeros((4, 4), np.uint8)
    m[0, 0], m[1, 1], m[2, 2] = 255, 7, 255
    _write(tmp_path, "a", m)
    labels = FolderSegmentation(tmp_path, ignore_index=7).labels[0]
    assert labels[0, 0] == labels[2, 2] == 1 and labels[1, 1] == BINARY_IGNORE and int(labels.sum()) == 257


def test_masks_without_foreground_warn(tmp_path):
    _write(tmp_path, "a", np.full((4, 4), 255, np.uint8))  # a 0/255 mask read with ignore 255: all ignored
    with pytest.warns(UserWarning, match="no mask under .* has a foreground pixel .*ignore_index=255"):
        FolderSegmentation(tmp_path, ignore_index=255)


def test_mixed_sizes_resized_to_one_size(tmp_path):
    """Images bilinearly (antialiased), masks by nearest neighbour, so labels stay labels."""
    small = np.zeros((8, 12), np.uint8)
    small[:4] = 1
    big = np.zeros((16, 24), np.uint8)
    big[:, 12:] = 255
    _write(tmp_path, "a", small)
    _write(tmp_path, "b", big)
    ds = FolderSegmentation(tmp_path, size=(4, 6))
    assert ds.images.shape == (2, 3, 4, 6) and ds.images.dtype == torch.uint8
    expect_a = torch.zeros(4, 6, dtype=torch.uint8)
    expect_a[:2] = 1
    expect_b = torch.zeros(4, 6, dtype=torch.uint8)
    expect_b[:, 3:] = 1
    assert torch.equal(ds.labels[0], expect_a) and torch.equal(ds.labels[1], expect_b)
    img = np.asarray(Image.open(tmp_path / "images" / "b.png"), np.float32)
    block_mean = img.reshape(4, 4, 6, 4, 3).mean(axis=(1, 3))  # 4x4 area average = the 4x downscale
    got = ds.images[1].permute(1, 2, 0).numpy().astype(np.float32)
    assert np.abs(got - block_mean).mean() < 12  # antialiased bilinear is close to the area average
    with pytest.raises(ValueError, match="size must be"):
        FolderSegmentation(tmp_path, size=(4, 0))


def test_data_spec_size_reaches_folder_splits(tmp_path):
    for i in range(5):
        _write(tmp_path, f"im{i}", np.full((4 + i, 6), i % 2, np.uint8))
    train, val, _ = load_splits(DataSpec(kind="folder", path=str(tmp_path), size=(5, 5)))
    assert train.images.shape == (4, 3, 5, 5) and val.labels.shape == (1, 5, 5)


def test_folder_splits_without_subfolders(tmp_path):
    for i in range(10):
        _write(tmp_path, f"im{i}", np.full((4, 4), i % 2, np.uint8))
    train, val, test = load_splits(DataSpec(kind="folder", path=str(tmp_path)))
    assert (len(train), len(val)) == (8, 2) and test is val


def test_augment_flips_and_crops_pairs_consistently():
    x = torch.arange(2 * 6 * 8, dtype=torch.float32).view(2, 1, 6, 8).expand(2, 3, 6, 8)
    y = x[:, 0].long()
    g = torch.Generator().manual_seed(0)
    xa, ya = augment(x, y, g, crop=(4, 5))
    assert xa.shape == (2, 3, 4, 5) and torch.equal(xa[:, 0].long(), ya)  # labels moved with their pixels


# ---------------------------------------------------------------------------------------------- CamVid
def _camvid_dir() -> Path | None:
    """CamVid from IOU_DATA_DIR, else None."""
    with contextlib.suppress(FileNotFoundError):
        return camvid_root(data_dir()) if data_dir() is not None else None
    return None


CAMVID = _camvid_dir()
needs_camvid = pytest.mark.skipif(
    CAMVID is None, reason="CamVid not found: set IOU_DATA_DIR to its folder (see data/README.md)"
)


@needs_camvid
def test_camvid_splits_classes_and_cache():
    t0 = time.perf_counter()
    train = camvid(CAMVID, "train", scale=4)
    first = time.perf_counter() - t0
    assert len(train) == 367 and train.images.shape[1:] == (3, 45, 60) and train.num_classes == 11
    assert train.ignore_index == CAMVID_IGNORE and train.class_names == list(CAMVID_CLASSES)
    assert int(train.labels.max()) == CAMVID_IGNORE
    assert len(camvid(CAMVID, "val", scale=4)) == 101 and len(camvid(CAMVID, "test", scale=4)) == 233
    t0 = time.perf_counter()
    car = camvid(CAMVID, "train", "cars", scale=4)  # cached decode: a view costs a comparison
    assert time.perf_counter() - t0 < max(0.2, first / 5)
    assert car.images is train.images and car.num_classes == 1 and car.class_names == ["Car"]
    void = train.labels == CAMVID_IGNORE
    assert torch.equal(car.labels == BINARY_IGNORE, void)  # void stays ignored, not background
    assert torch.equal(car.labels == 1, train.labels == 8)
    frac = car.foreground_fraction()
    assert 0.03 < frac < 0.09  # README: Car is 5.86 % of train pixels (3.96 % void)


@needs_camvid
def test_camvid_data_spec_and_env(monkeypatch):
    monkeypatch.setenv("IOU_DATA_DIR", str(CAMVID.parent))
    train, val, test = load_splits(DataSpec(kind="camvid", class_name="pedestrian", scale=4))
    assert (len(train), len(val), len(test)) == (367, 101, 233) and train.class_names == ["Pedestrian"]


def test_camvid_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("IOU_DATA_DIR", raising=False)
    with pytest.raises(ValueError, match="set IOU_DATA_DIR"):
        camvid(None)
    with pytest.raises(FileNotFoundError, match="no CamVid layout"):
        camvid(tmp_path)
    with pytest.raises(ValueError, match="unknown CamVid class 'boat'; expected one of Sky, Building"):
        camvid_class_index("boat")
    assert camvid_class_index("Bicyclist") == 10 and camvid_class_index("pole") == 2
