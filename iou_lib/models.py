"""Small segmentation networks: a U-Net and an FCN, width and depth as arguments.

Both map an image ``(B, in_channels, H, W)`` to logits ``(B, out_channels, H, W)``: ``out_channels=1``
is a binary head (one foreground logit per pixel), ``out_channels=C >= 2`` a C-class head. Any ``H, W``
works: the input is padded to a multiple of ``2**depth`` and the logits are cropped back.

**Groups** (``groups=S``): S independent networks in one, every convolution grouped (``groups=S``) so
network ``s`` sees only channels ``s * in_channels ... (s + 1) * in_channels`` of the input and writes
its logits to channels ``s * out_channels ...``; normalisation is per channel (BatchNorm) or per group of
a network's channels (GroupNorm), so the S networks never mix. Training S seeds of one configuration
this way runs one kernel per layer instead of S (what fills a GPU); :func:`stack_states` and
:func:`unstack_state` convert between S single networks and one grouped network.

* :class:`UNet`: ``depth`` down-sampling stages of two 3x3 conv-norm-ReLU blocks, channels
  ``width * 2**level``, a mirrored decoder with bilinear up-sampling and skip concatenation.
* :class:`FCN`: the same encoder without a decoder; a 1x1 scoring layer on every stage, the scores
  up-sampled bilinearly and summed (the FCN-8s idea, generalised to ``depth`` stages).

>>> import torch
>>> net = build_model("unet", out_channels=1, width=4, depth=2)
>>> net(torch.zeros(2, 3, 30, 17)).shape
torch.Size([2, 1, 30, 17])
>>> build_model("fcn", out_channels=11, width=4, depth=3)(torch.zeros(1, 3, 45, 60)).shape
torch.Size([1, 11, 45, 60])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FCN", "MODELS", "UNet", "build_model", "count_parameters", "stack_states", "unstack_state"]


def _norm(kind: str, channels: int, groups: int = 1) -> nn.Module:
    """Normalisation of ``groups`` networks' ``channels`` each (stacked)."""
    if kind == "batch":
        return nn.BatchNorm2d(groups * channels)
    if kind == "group":
        return nn.GroupNorm(groups * min(8, channels), groups * channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'group' or 'none', got {kind!r}")


def _conv(c_in: int, c_out: int, kernel: int, groups: int, bias: bool = True) -> nn.Conv2d:
    """``groups`` independent ``c_in -> c_out`` convolutions, stacked along the channels."""
    return nn.Conv2d(groups * c_in, groups * c_out, kernel, padding=kernel // 2, groups=groups, bias=bias)


def _block(c_in: int, c_out: int, norm: str, groups: int = 1) -> nn.Sequential:
    """Two 3x3 conv -> norm -> ReLU layers."""
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers += [
            _conv(c, c_out, 3, groups, bias=norm == "none"),
            _norm(norm, c_out, groups),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


def _cat(a: Tensor, b: Tensor, groups: int) -> Tensor:
    """Concatenate channels network by network: ``[a_0, b_0, a_1, b_1, ...]``."""
    if groups == 1:
        return torch.cat([a, b], dim=1)
    n, _, h, w = a.shape
    parts = [a.unflatten(1, (groups, -1)), b.unflatten(1, (groups, -1))]
    return torch.cat(parts, dim=2).reshape(n, -1, h, w)  # (reshape: the inputs may be channels_last)


def _check(in_channels: int, out_channels: int, width: int, depth: int, groups: int = 1) -> None:
    for name, value, low in (
        ("in_channels", in_channels, 1),
        ("out_channels", out_channels, 1),
        ("width", width, 1),
        ("depth", depth, 0),
        ("groups", groups, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")


class _Padded(nn.Module):
    """Pads the input to a multiple of ``2**depth`` and crops the logits back to the input size."""

    depth: int

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = -h % m, -w % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return self.net_forward(x)[..., :h, :w]

    def net_forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError


class _Encoder(nn.Module):
    def __init__(self, in_channels: int, width: int, depth: int, norm: str, groups: int = 1) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(depth + 1)]
        self.stages = nn.ModuleList([_block(in_channels, chans[0], norm, groups)])
        self.stages.extend(_block(chans[i], chans[i + 1], norm, groups) for i in range(depth))
        self.channels = chans

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = [self.stages[0](x)]
        for stage in self.stages[1:]:
            feats.append(stage(F.max_pool2d(feats[-1], 2)))
        return feats


class UNet(_Padded):
    """U-Net (Ronneberger et al. 2015), small: ``width`` channels at full resolution, ``depth`` poolings."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        width: int = 16,
        depth: int = 3,
        norm: str = "batch",
        groups: int = 1,
    ) -> None:
        super().__init__()
        _check(in_channels, out_channels, width, depth, groups)
        self.depth, self.groups = depth, groups
        self.encoder = _Encoder(in_channels, width, depth, norm, groups)
        c = self.encoder.channels
        self.decoder = nn.ModuleList(
            _block(c[i + 1] + c[i], c[i], norm, groups) for i in reversed(range(depth))
        )
        self.head = _conv(c[0], out_channels, 1, groups)

    def net_forward(self, x: Tensor) -> Tensor:
        feats = self.encoder(x)
        y = feats[-1]
        for block, skip in zip(self.decoder, reversed(feats[:-1]), strict=True):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(_cat(y, skip, self.groups))
        return self.head(y)


class FCN(_Padded):
    """Fully convolutional net (Long et al. 2015): per-stage 1x1 scores, up-sampled and summed."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        width: int = 16,
        depth: int = 3,
        norm: str = "batch",
        groups: int = 1,
    ) -> None:
        super().__init__()
        _check(in_channels, out_channels, width, depth, groups)
        self.depth = depth
        self.encoder = _Encoder(in_channels, width, depth, norm, groups)
        self.scores = nn.ModuleList(_conv(c, out_channels, 1, groups) for c in self.encoder.channels)

    def net_forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        out = None
        for score, feat in zip(self.scores, self.encoder(x), strict=True):
            s = F.interpolate(score(feat), size=size, mode="bilinear", align_corners=False)
            out = s if out is None else out + s
        return out


MODELS: dict[str, type[_Padded]] = {"unet": UNet, "fcn": FCN}


def build_model(
    name: str,
    in_channels: int = 3,
    out_channels: int = 1,
    width: int = 16,
    depth: int = 3,
    norm: str = "batch",
    groups: int = 1,
) -> nn.Module:
    """The model ``name`` (``"unet"`` or ``"fcn"``) with the given head and size (``groups`` networks)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(MODELS)}")
    return MODELS[name](in_channels, out_channels, width, depth, norm, groups)


def stack_states(states: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The state of one ``groups=S`` network made of S single networks' states (same architecture).

    Every parameter and buffer of network ``s`` becomes block ``s`` along dim 0 (BatchNorm's step
    counter, a scalar, is taken from the first).

    >>> nets = [build_model("unet", width=2, depth=1) for _ in range(3)]
    >>> grouped = build_model("unet", width=2, depth=1, groups=3)
    >>> grouped.load_state_dict(stack_states([n.state_dict() for n in nets]))
    <All keys matched successfully>
    >>> x = torch.randn(2, 3, 3, 8, 8)  # a batch of 2 for each of 3 networks
    >>> out = grouped.eval()(x.flatten(1, 2))
    >>> all(torch.allclose(out[:, s : s + 1], nets[s].eval()(x[:, s]), atol=1e-5) for s in range(3))
    True
    """
    return {
        k: states[0][k] if states[0][k].dim() == 0 else torch.cat([s[k] for s in states]) for k in states[0]
    }


def unstack_state(state: dict[str, Tensor], groups: int) -> list[dict[str, Tensor]]:
    """Inverse of :func:`stack_states`: the ``groups`` single networks' states."""
    return [
        {k: v if v.dim() == 0 else v.chunk(groups)[s].clone() for k, v in state.items()}
        for s in range(groups)
    ]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
