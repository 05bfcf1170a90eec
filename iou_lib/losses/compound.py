"""Weighted sums of registered losses, and ``parse`` for specs such as ``"0.25*bce+0.75*soft_iou"``.

>>> import torch
>>> from iou_lib.losses import bce, soft_iou
>>> loss = parse("0.25*bce + 0.75*soft_iou")
>>> loss
WeightedSum(0.25*bce + 0.75*soft_iou)
>>> z, y = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
>>> bool(torch.isclose(loss(z, y), 0.25 * bce(z, y) + 0.75 * soft_iou(z, y)))
True
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from iou_lib.losses.registry import Loss, available, get

__all__ = ["WeightedSum", "parse"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class WeightedSum(nn.Module):
    r"""The loss :math:`\sum_k w_k L_k(\text{logits}, \text{target})` of ``(weight, module)`` terms."""

    def __init__(self, terms: Sequence[tuple[float, nn.Module]]) -> None:
        super().__init__()
        if isinstance(terms, (str, bytes)) or not isinstance(terms, Sequence) or len(terms) == 0:
            raise ValueError(f"terms must be a non-empty sequence of (weight, module) pairs, got {terms!r}")
        weights = []
        for i, term in enumerate(terms):
            if not (isinstance(term, tuple) and len(term) == 2):
                raise TypeError(f"terms[{i}] must be a (weight, module) pair, got {term!r}")
            weight, module = term
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                raise ValueError(f"terms[{i}] weight must be a finite number, got {weight!r}")
            if not isinstance(module, nn.Module):
                raise TypeError(f"terms[{i}] loss must be an nn.Module, got {type(module).__name__}")
            weights.append(float(weight))
        self.weights = weights
        self.terms = nn.ModuleList(module for _, module in terms)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        pairs = zip(self.weights, self.terms, strict=True)
        return torch.stack([w * term(logits, target) for w, term in pairs]).sum()

    def __repr__(self) -> str:
        names = [term.name if isinstance(term, Loss) else type(term).__name__ for term in self.terms]
        terms = " + ".join(f"{w:g}*{n}" for w, n in zip(self.weights, names, strict=True))
        return f"WeightedSum({terms})"


def parse(spec: str, options: Mapping[str, Mapping[str, object]] | None = None) -> nn.Module:
    """A loss module from a registry name (``"soft_iou"``) or a weighted sum (``"0.25*bce+0.75*soft_iou"``).

    Each ``+``-separated term is ``name`` (weight 1) or ``weight*name``; spaces are allowed. ``options``
    maps a loss name to the keyword arguments it is built with, e.g.
    ``parse("bce+soft_iou", {"soft_iou": {"per_image": True}})``. A single unweighted name returns the
    plain :class:`~iou_lib.losses.registry.Loss` module. Raises ``ValueError`` on a malformed spec, an
    unknown name (listing the available ones) or options for a loss that is not in the spec.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str, got {type(spec).__name__}")
    options = dict(options or {})
    terms: list[tuple[float, str]] = []
    for raw in spec.split("+"):
        part = raw.strip()
        weight_text, star, name = part.rpartition("*")
        name = name.strip()
        if not _NAME.fullmatch(name):
            raise ValueError(f"cannot parse loss spec {spec!r}: term {part!r} is not 'name' or 'weight*name'")
        weight = 1.0
        if star:
            try:
                weight = float(weight_text)
            except ValueError:
                bad = weight_text.strip()
                raise ValueError(f"cannot parse loss spec {spec!r}: weight {bad!r} is not a number") from None
            if not math.isfinite(weight):
                raise ValueError(f"cannot parse loss spec {spec!r}: weight {weight} is not finite")
        if name not in available():
            names = ", ".join(available())
            raise ValueError(f"unknown loss {name!r} in spec {spec!r}; available losses: {names}")
        terms.append((weight, name))
    unused = set(options) - {name for _, name in terms}
    if unused:
        raise ValueError(f"options given for losses not in spec {spec!r}: {sorted(unused)}")
    if len(terms) == 1 and terms[0][0] == 1.0:
        return get(terms[0][1], **options.get(terms[0][1], {}))
    return WeightedSum([(w, get(name, **options.get(name, {}))) for w, name in terms])
