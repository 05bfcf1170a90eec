"""Name -> loss lookup: ``get(name, **kw)`` returns an ``nn.Module``, ``available()`` lists the names.

Each loss family registers its functional form with :func:`register`; :class:`Loss` wraps any of them
as an ``nn.Module`` with fixed keyword arguments, so there is one module class, not one per loss.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

LossFn = Callable[..., Tensor]

_REGISTRY: dict[str, LossFn] = {}


def register(name: str) -> Callable[[LossFn], LossFn]:
    """Decorator: register a functional loss ``fn(logits, target, **kw) -> Tensor`` under ``name``."""

    def deco(fn: LossFn) -> LossFn:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"loss name {name!r} is already registered")
        _REGISTRY[name] = fn
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


class Loss(nn.Module):
    """A registered loss as an ``nn.Module``: ``Loss("soft_iou", per_image=True)(logits, target)``."""

    def __init__(self, name: str, **kwargs: object) -> None:
        super().__init__()
        self.name = name
        self.fn = functional(name)
        self.kwargs = kwargs

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.fn(logits, target, **self.kwargs)

    def extra_repr(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.name!r}" + (f", {args}" if args else "")


def get(name: str, **kwargs: object) -> Loss:
    """The loss registered under ``name`` as an ``nn.Module`` with ``kwargs`` bound.

    Raises ``ValueError`` listing the available names when ``name`` is unknown.
    """
    return Loss(name, **kwargs)
