"""iou_lib.data.locate.find_camvid: the folder, or a message naming the path tried and what was wrong."""

from pathlib import Path

import pytest

from iou_lib.data.locate import find_camvid


def _layout(root: Path, skip: str = "") -> Path:
    for split in ("train", "val", "test"):
        for part in ("images", "labels"):
            if f"{split}/{part}" != skip:
                (root / split / part).mkdir(parents=True)
    return root


def test_unset(monkeypatch):
    monkeypatch.delenv("IOU_DATA_DIR", raising=False)
    status = find_camvid()
    assert not status and status.root is None
    assert status.message.startswith("CamVid not found: IOU_DATA_DIR is not set.")
    assert "data/README.md" in status.message


def test_missing_path_from_the_environment_is_named(monkeypatch, tmp_path):
    wrong = tmp_path / "no_such_dir"
    monkeypatch.setenv("IOU_DATA_DIR", str(wrong))
    status = find_camvid()
    assert status.root is None
    assert f"{wrong} (from IOU_DATA_DIR) does not exist" in status.message


def test_a_file_is_not_a_folder(tmp_path):
    file = tmp_path / "camvid.zip"
    file.write_bytes(b"")
    assert f"{file} (given as an argument) is a file, not a folder" in find_camvid(file).message


def test_incomplete_layout_lists_what_is_missing_and_what_is_there(tmp_path):
    _layout(tmp_path / "camvid", skip="test/labels")
    (tmp_path / "notes.txt").write_text("")
    status = find_camvid(tmp_path)
    assert status.root is None
    msg = status.message
    assert f"{tmp_path} lacks train/images" in msg and "it holds camvid/, notes.txt" in msg
    assert f"{tmp_path / 'camvid'} lacks test/labels (" in msg and "train/labels" not in msg.split("; ")[1]


@pytest.mark.parametrize("nested", [True, False])
def test_found_directly_or_in_camvid_subfolder(tmp_path, monkeypatch, nested):
    root = _layout(tmp_path / "camvid" if nested else tmp_path)
    monkeypatch.setenv("IOU_DATA_DIR", str(tmp_path))
    status = find_camvid()
    assert status and status.root == root
    assert status.message == f"CamVid found at {root} (from IOU_DATA_DIR)."
