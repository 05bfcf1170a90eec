"""Find CamVid, and when it is not there say which path was tried and why it failed.

A notebook or a test that offers a live CamVid run calls :func:`find_camvid` instead of catching the
loader's exception: the answer carries the folder (or ``None``) and a one-paragraph message that names the
path, where it came from (argument or ``IOU_DATA_DIR``) and what was missing there.

>>> status = find_camvid("/nonexistent/data")
>>> status.root is None, status.message.splitlines()[0]
(True, 'CamVid not found: /nonexistent/data (given as an argument) does not exist.')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from iou_lib.config import data_dir

__all__ = ["CamVidStatus", "find_camvid"]

SPLITS = ("train", "val", "test")
HOW_TO = "See data/README.md for the download and the layout; the stored results need no data."


@dataclass(frozen=True)
class CamVidStatus:
    """Where CamVid is (``root``, ``None`` when not found) and a message for the reader."""

    root: Path | None
    message: str

    def __bool__(self) -> bool:
        return self.root is not None


def _layout_gaps(folder: Path) -> list[str]:
    """The parts of the CamVid layout missing under ``folder`` (empty when it is complete)."""
    return [
        f"{split}/{part}"
        for split in SPLITS
        for part in ("images", "labels")
        if not (folder / split / part).is_dir()
    ]


def _contents(folder: Path, limit: int = 8) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    if not names:
        return "it is empty"
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return "it holds " + ", ".join(names[:limit]) + more


def find_camvid(path: str | os.PathLike[str] | None = None) -> CamVidStatus:
    """The CamVid folder from ``path``, else ``$IOU_DATA_DIR``: the folder itself or its ``camvid/``.

    Never raises for a missing or wrong location; the message of the result says what was tried.
    """
    source = "given as an argument" if path is not None else "from IOU_DATA_DIR"
    base = data_dir(path)
    if base is None:
        return CamVidStatus(None, f"CamVid not found: IOU_DATA_DIR is not set.\n{HOW_TO}")
    if not base.exists():
        return CamVidStatus(None, f"CamVid not found: {base} ({source}) does not exist.\n{HOW_TO}")
    if not base.is_dir():
        return CamVidStatus(None, f"CamVid not found: {base} ({source}) is a file, not a folder.\n{HOW_TO}")
    tried = []
    for candidate in (base, base / "camvid"):
        gaps = _layout_gaps(candidate)
        if not gaps:
            return CamVidStatus(candidate, f"CamVid found at {candidate} ({source}).")
        if candidate.is_dir():
            tried.append(f"{candidate} lacks {', '.join(gaps)} ({_contents(candidate)})")
        else:
            tried.append(f"{candidate} does not exist")
    return CamVidStatus(
        None, f"CamVid not found from {base} ({source}): " + "; ".join(tried) + f".\n{HOW_TO}"
    )
