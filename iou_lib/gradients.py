r"""Gradient fields: where a loss pushes each logit, and how much of the push lands on the foreground.

For a loss :math:`L(z, y)` of logits :math:`z` and a target :math:`y`, the *gradient field* is the map
:math:`\partial L / \partial z_v` over pixels :math:`v` (computed by autograd, so it works for every
registered loss and compound spec). Gradient descent moves each logit by :math:`-\partial L/\partial z_v`:
negative entries raise the foreground probability, positive entries lower it.

The summary that separates the loss families is the *gradient mass* on each side of the target,

.. math::

    M_{fg} = \sum_{v:\,y_v = 1} \left|\frac{\partial L}{\partial z_v}\right|, \qquad
    M_{bg} = \sum_{v:\,y_v = 0} \left|\frac{\partial L}{\partial z_v}\right|,

reported as the foreground share :math:`M_{fg} / (M_{fg} + M_{bg})` and the ratio :math:`M_{bg}/M_{fg}`.
Both are free of the loss's overall scale. At an uninformed prediction (:math:`z \equiv 0`) with 1 %
foreground, binary cross-entropy has :math:`M_{bg}/M_{fg} = 99`; soft IoU has :math:`(N-|Y|)/(N+|Y|)
\approx 0.98` (see notebook 02). That balance belongs to the uninformed state only: ignoring
:math:`\sigma'`, the soft IoU's ratio is :math:`M_{bg}/M_{fg} = \frac{N-|Y|}{|Y|}\,\frac{I}{U}`, which grows
with the soft IoU :math:`J = I/U` itself (:func:`progress_table` measures it along a training path).

>>> import torch
>>> y = torch.zeros(1, 1, 10, 10); y[..., :1, :] = 1          # 10 % foreground
>>> g = gradient_field("bce", torch.zeros_like(y), y)
>>> round(gradient_mass(g, y)["bg_over_fg"], 6)
9.0
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

import pandas as pd
import torch
from torch import Tensor

from iou_lib import losses
from iou_lib.data.synthetic import blob_masks

__all__ = ["accepts", "gradient_field", "gradient_mass", "mass_table", "progress_table", "synthetic_logits"]

LossLike = str | Callable[[Tensor, Tensor], Tensor]


def accepts(loss: str, keyword: str) -> bool:
    """Whether the registered loss ``loss`` takes the keyword argument ``keyword`` (e.g. ``per_image``)."""
    return keyword in inspect.signature(losses.functional(loss)).parameters


def _resolve(loss: LossLike, kwargs: dict) -> Callable[[Tensor, Tensor], Tensor]:
    if isinstance(loss, str):
        if "+" in loss or "*" in loss:
            if kwargs:
                raise ValueError(
                    f"loss keyword arguments {sorted(kwargs)} cannot be bound to a compound "
                    f"spec {loss!r}; build the module yourself and pass it"
                )
            return losses.parse(loss)
        return losses.get(loss, **kwargs)
    if callable(loss):
        if kwargs:
            raise ValueError("loss keyword arguments are only accepted with a registered loss name")
        return loss
    raise TypeError(
        f"loss must be a registered name, a compound spec or a callable, got {type(loss).__name__}"
    )


def gradient_field(loss: LossLike, logits: Tensor, target: Tensor, **loss_kwargs: object) -> Tensor:
    r"""The per-pixel gradient :math:`\partial L/\partial z` of ``loss`` at ``logits`` (``logits``' shape).

    ``loss`` is a registered name (keyword arguments are bound to it, e.g. ``per_image=False``), a
    compound spec such as ``"0.25*bce+0.75*soft_iou"``, or any callable ``loss(logits, target)``.
    The logits are not modified; the result is detached.

    >>> import torch
    >>> y = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    >>> gradient_field("bce", torch.zeros_like(y), y).flatten().tolist()   # (sigmoid(0) - y) / 4
    [-0.125, 0.125, 0.125, 0.125]
    """
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        raise TypeError(
            f"logits and target must be tensors, got {type(logits).__name__} and {type(target).__name__}"
        )
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    fn = _resolve(loss, loss_kwargs)
    z = logits.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        value = fn(z, target)
        (grad,) = torch.autograd.grad(value, z, allow_unused=True)
    return torch.zeros_like(z).detach() if grad is None else grad.detach()


def gradient_mass(grad: Tensor, target: Tensor) -> dict[str, float]:
    """Foreground vs background gradient mass of a binary gradient field.

    Returns ``fg_mass`` and ``bg_mass`` (sums of absolute gradients), ``fg_share`` =
    fg / (fg + bg), ``bg_over_fg`` = bg / fg (``inf`` when fg is 0 and bg is not, ``nan`` when both are
    0), and the mean absolute gradient per foreground and per background pixel. ``target`` is a {0, 1}
    mask of ``grad``'s shape, or of ``grad``'s shape without the channel dimension.

    >>> import torch
    >>> gradient_mass(torch.tensor([-2.0, 1.0, 1.0]), torch.tensor([1, 0, 0]))["fg_share"]
    0.5
    """
    if not isinstance(grad, Tensor) or not isinstance(target, Tensor):
        raise TypeError(
            f"grad and target must be tensors, got {type(grad).__name__} and {type(target).__name__}"
        )
    if target.shape != grad.shape:
        if (
            grad.dim() == target.dim() + 1
            and grad.shape[1] == 1
            and grad.shape[:1] + grad.shape[2:] == target.shape
        ):
            target = target.unsqueeze(1)
        else:
            raise ValueError(
                f"target must have grad's shape {tuple(grad.shape)} (or without the channel "
                f"dim), got {tuple(target.shape)}"
            )
    a = grad.detach().abs().double()
    fg = target.bool()
    fg_mass, bg_mass = a[fg].sum().item(), a[~fg].sum().item()
    n_fg, n_bg = int(fg.sum()), int((~fg).sum())
    total = fg_mass + bg_mass
    return {
        "fg_mass": fg_mass,
        "bg_mass": bg_mass,
        "fg_share": fg_mass / total if total > 0 else float("nan"),
        "bg_over_fg": bg_mass / fg_mass if fg_mass > 0 else (float("inf") if bg_mass > 0 else float("nan")),
        "fg_mean": fg_mass / n_fg if n_fg else float("nan"),
        "bg_mean": bg_mass / n_bg if n_bg else float("nan"),
    }


def synthetic_logits(
    target: Tensor, confidence: float = 0.0, noise: float = 0.0, seed: int = 0, bias: float = 0.0
) -> Tensor:
    r"""Logits of a prediction in a chosen state: :math:`z = c\,(2y - 1) + b + \sigma_n\,\varepsilon`.

    ``confidence`` :math:`c` is the logit margin: 0 is an uninformed network (:math:`p = 0.5`
    everywhere), 2 a fairly good one (:math:`p \approx 0.88` on the correct side), negative values a
    confidently wrong one. ``bias`` :math:`b` shifts every logit (:math:`b = -3`: a network that
    predicts background almost everywhere, the accuracy trap of notebook 01). ``noise``
    :math:`\sigma_n` adds i.i.d. Gaussian logit noise (seeded).

    >>> import torch
    >>> synthetic_logits(torch.tensor([1.0, 0.0]), confidence=3.0).tolist()
    [3.0, -3.0]
    >>> synthetic_logits(torch.tensor([1.0, 0.0]), bias=-2.0).tolist()
    [-2.0, -2.0]
    """
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a tensor, got {type(target).__name__}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    dtype = target.dtype if target.is_floating_point() else torch.float32
    z = confidence * (2 * target.to(dtype) - 1) + bias
    if noise > 0:
        gen = torch.Generator().manual_seed(int(seed))
        z = z + noise * torch.randn(target.shape, generator=gen, dtype=dtype).to(target.device)
    return z


def mass_table(
    loss_names: Iterable[str],
    fg_fracs: Iterable[float],
    *,
    size: int = 64,
    n: int = 4,
    n_objects: int = 4,
    confidence: float = 0.0,
    noise: float = 0.0,
    bias: float = 0.0,
    seed: int = 0,
    loss_kwargs: dict[str, dict] | None = None,
) -> pd.DataFrame:
    """Tidy table of gradient mass statistics: one row per (loss, foreground fraction).

    Masks come from :func:`iou_lib.data.synthetic.blob_masks` (``n`` images of ``size`` px), logits
    from :func:`synthetic_logits` (``confidence``, ``noise``, ``bias``). Columns: ``loss``, ``fg_frac``
    (requested), ``fg_actual`` (measured), and the keys of :func:`gradient_mass`. ``loss_kwargs`` maps
    a loss name to keyword arguments.
    """
    loss_names, loss_kwargs = list(loss_names), loss_kwargs or {}
    rows = []
    for frac in fg_fracs:
        y = blob_masks(n, size, float(frac), n_objects=n_objects, seed=seed)
        z = synthetic_logits(y, confidence, noise, seed=seed, bias=bias)
        for name in loss_names:
            g = gradient_field(name, z, y, **loss_kwargs.get(name, {}))
            rows.append(
                {"loss": name, "fg_frac": float(frac), "fg_actual": y.mean().item(), **gradient_mass(g, y)}
            )
    return pd.DataFrame(rows)


def progress_table(
    loss: str,
    fg_fracs: Iterable[float],
    confidences: Iterable[float],
    *,
    size: int = 64,
    n: int = 4,
    noise: float = 1.0,
    seed: int = 0,
    **loss_kwargs: object,
) -> pd.DataFrame:
    r"""Foreground share of a loss's push along a path of improving predictions: a tidy table.

    For each foreground fraction, masks come from :func:`iou_lib.data.synthetic.blob_masks` and the
    prediction moves from uninformed to good as the logit margin ``confidence`` grows
    (:func:`synthetic_logits` with Gaussian ``noise``). Columns: ``fg_frac`` (requested), ``fg_actual``,
    ``confidence``, ``soft_iou`` (the batch soft IoU :math:`J = I/U` of the prediction, a measure of
    training progress), ``fg_share`` (of :math:`|\partial L/\partial z|`) and ``fg_share_dp`` (of
    :math:`|\partial L/\partial p|`, the gradient before the sigmoid factor :math:`p(1-p)`).

    For the batch soft IoU, ``fg_share_dp`` is exactly :math:`1 / (1 + \frac{N - |Y|}{|Y|} J)`:

    >>> t = progress_table("soft_iou", [0.05], [0.0, 3.0], size=32, n=2, per_image=False)
    >>> k, n = t["fg_actual"] * 2 * 32 * 32, 2 * 32 * 32
    >>> bool(((t["fg_share_dp"] - 1 / (1 + (n - k) / k * t["soft_iou"])).abs() < 1e-9).all())
    True
    """
    rows = []
    for frac in fg_fracs:
        y = blob_masks(n, size, float(frac), seed=seed).double()
        for c in confidences:
            z = synthetic_logits(y, float(c), noise, seed=seed)
            p = torch.sigmoid(z)
            inter, union = (p * y).sum(), (p + y - p * y).sum()
            g = gradient_field(loss, z, y, **loss_kwargs)
            rows.append(
                {
                    "fg_frac": float(frac),
                    "fg_actual": y.mean().item(),
                    "confidence": float(c),
                    "soft_iou": (inter / union).item(),
                    "fg_share": gradient_mass(g, y)["fg_share"],
                    "fg_share_dp": gradient_mass(g / (p * (1 - p)), y)["fg_share"],
                }
            )
    return pd.DataFrame(rows)
