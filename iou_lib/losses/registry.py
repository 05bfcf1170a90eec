"""Name -> loss lookup: ``get(name, **kw)`` returns an ``nn.Module``, ``available()`` lists the names.

Each loss family registers its functional form with :func:`register`, naming the task modes it supports.
:class:`Loss` wraps any of them as an ``nn.Module`` with keyword arguments bound **and checked at
construction**: a misspelt keyword or a bad value (``smooth=float("inf")``, ``reduction="avg"``) raises
there, not on the first forward pass. The named modules of :mod:`iou_lib.losses.modules`
(``SoftIoULoss``, ``LovaszHingeLoss``, ...) are subclasses of it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import ClassVar

from torch import Tensor, nn

from iou_lib.validation import (
    MODES,
    REDUCTIONS,
    check_choice,
    check_classes,
    check_flag,
    check_ignore_index,
    check_mode,
    check_real,
)

LossFn = Callable[..., Tensor]

_REGISTRY: dict[str, LossFn] = {}
_MODES: dict[str, tuple[str, ...]] = {}


def _check_validate_args(value: object) -> None:
    if value is not None:
        check_flag(value, "validate_args")


#: What a keyword option may hold, for every loss that takes it (checked by :class:`Loss` at
#: construction; the losses check again at call time, with what only the input can tell, e.g. C).
OPTION_CHECKS: dict[str, Callable[[object], object]] = {
    "per_image": lambda v: check_flag(v, "per_image"),
    "smooth": lambda v: check_real(v, "smooth"),
    "empty": lambda v: check_choice(v, "empty", ("fp_rate", "raw", "ignore")),
    "classes": check_classes,
    "reduction": lambda v: check_choice(v, "reduction", REDUCTIONS),
    "ignore_index": check_ignore_index,
    "validate_args": _check_validate_args,
    "beta": lambda v: check_real(v, "beta"),
    "gamma": lambda v: check_real(v, "gamma"),
}


def register(
    name: str, *, modes: tuple[str, ...] = MODES, checks: dict[str, Callable[[object], object]] | None = None
) -> Callable[[LossFn], LossFn]:
    """Decorator: register a functional loss ``fn(logits, target, **kw) -> Tensor`` under ``name``.

    ``modes`` lists the task modes it supports; ``checks`` adds or overrides option checks
    (:data:`OPTION_CHECKS`) for this loss, e.g. ``alpha``, whose meaning differs between losses.
    """

    def deco(fn: LossFn) -> LossFn:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"loss name {name!r} is already registered")
        _REGISTRY[name] = fn
        _MODES[name] = modes
        fn.option_checks = {**OPTION_CHECKS, **(checks or {})}  # type: ignore[attr-defined]
        return fn

    return deco


def available() -> list[str]:
    """The registered loss names, sorted."""
    return sorted(_REGISTRY)


def functional(name: str) -> LossFn:
    """The functional form registered under ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"loss name must be a str, got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; available losses: {', '.join(available())}") from None


def modes(name: str) -> tuple[str, ...]:
    """The task modes the loss ``name`` supports.

    >>> modes("lovasz_hinge")
    ('binary', 'multilabel')
    """
    functional(name)
    return _MODES[name]


def options(name: str) -> dict[str, object]:
    """The keyword options of the loss ``name`` and their defaults.

    >>> options("lovasz_hinge")["per_image"]
    True
    """
    params = inspect.signature(functional(name)).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_options(name: str, kwargs: dict[str, object]) -> None:
    """Raise ``TypeError`` for a keyword the loss ``name`` does not take and ``TypeError``/``ValueError``
    for a value it cannot take (the checks that need no input)."""
    known = options(name)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise TypeError(f"loss {name!r} got unexpected options {unknown}; it takes {sorted(known)}")
    checks = functional(name).option_checks  # type: ignore[attr-defined]
    for key, value in kwargs.items():
        if key == "mode":
            check_mode(value, _MODES[name])
        elif key in checks:
            checks[key](value)


class Loss(nn.Module):
    """A registered loss as an ``nn.Module``: ``Loss("soft_iou", per_image=True)(logits, target)``.

    The options are checked here, at construction (:func:`check_options`). Subclasses name their loss
    in ``loss_name`` and are built from options only: ``SoftIoULoss(per_image=True)``.
    """

    loss_name: ClassVar[str | None] = None

    def __init__(self, name: str | None = None, /, **kwargs: object) -> None:
        super().__init__()
        if self.loss_name is not None:
            if name is not None:
                raise TypeError(
                    f"{type(self).__name__} takes keyword options only, got a positional {name!r}"
                )
            name = self.loss_name
        elif name is None:
            raise TypeError("Loss needs the name of a registered loss, e.g. Loss('soft_iou')")
        self.fn = functional(name)
        check_options(name, kwargs)
        self.name = name
        self.kwargs = kwargs

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.fn(logits, target, **self.kwargs)

    def extra_repr(self) -> str:
        if self.loss_name is None:
            args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
            return f"{self.name!r}" + (f", {args}" if args else "")
        return ", ".join(f"{k}={v!r}" for k, v in {**options(self.name), **self.kwargs}.items())


def get(name: str, **kwargs: object) -> Loss:
    """The loss registered under ``name`` as an ``nn.Module`` with ``kwargs`` bound (and checked).

    Raises ``ValueError`` listing the available names when ``name`` is unknown, ``TypeError`` for an
    option the loss does not take.
    """
    return Loss(name, **kwargs)
