"""Draw the README's figure with the library: where four losses push the logits on imbalanced masks.

Usage: ``python tools/make_readme_figures.py [--out docs/figures]``. Deterministic (fixed seeds); the
PNG carries no version metadata, so re-running it on the same library versions changes no bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from iou_lib import viz
from iou_lib.data.synthetic import blob_masks
from iou_lib.gradients import gradient_field, synthetic_logits

REPO = Path(__file__).resolve().parents[1]
LOSSES = ("bce", "weighted_bce", "soft_iou", "lovasz_hinge")


def gradient_figure(fg_frac: float = 0.03, size: int = 64, n: int = 2):
    """Descent directions of :data:`LOSSES` for an uninformed, noisy prediction at ``fg_frac``."""
    target = blob_masks(n, size, fg_frac, n_objects=3, seed=1).double()
    logits = synthetic_logits(target, confidence=0.5, noise=1.0, seed=2)
    grads = {name: gradient_field(name, logits, target) for name in LOSSES}
    fig = viz.gradient_fields(grads, target, probs=torch.sigmoid(logits), cell=2.0)
    fig.suptitle(
        f"Descent direction $-\\partial L/\\partial z$ at {fg_frac:.0%} foreground "
        "(red: towards foreground; black: true object outline)",
        fontsize=10,
    )
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures", help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gradient_fields.png"
    gradient_figure().savefig(path, dpi=110, metadata={"Software": None})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
