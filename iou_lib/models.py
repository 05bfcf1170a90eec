"""Small segmentation networks: a U-Net and an FCN, width and depth as arguments.

Both map an image ``(B, in_channels, H, W)`` to logits ``(B, out_channels, H, W)``: ``out_channels=1``
is a binary head (one foreground logit per pixel), ``out_channels=C >= 2`` a C-class head. Any ``H, W``
works: the input is padded to a multiple of ``2**depth`` and the logits are cropped back.

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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FCN", "MODELS", "UNet", "build_model", "count_parameters"]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'group' or 'none', got {kind!r}")


def _block(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    """Two 3x3 conv -> norm -> ReLU layers."""
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        conv = nn.Conv2d(c, c_out, 3, padding=1, bias=norm == "none")
        layers += [conv, _norm(norm, c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _check(in_channels: int, out_channels: int, width: int, depth: int) -> None:
    for name, value, low in (
        ("in_channels", in_channels, 1),
        ("out_channels", out_channels, 1),
        ("width", width, 1),
        ("depth", depth, 0),
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
    def __init__(self, in_channels: int, width: int, depth: int, norm: str) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(depth + 1)]
        self.stages = nn.ModuleList([_block(in_channels, chans[0], norm)])
        self.stages.extend(_block(chans[i], chans[i + 1], norm) for i in range(depth))
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
    ) -> None:
        super().__init__()
        _check(in_channels, out_channels, width, depth)
        self.depth = depth
        self.encoder = _Encoder(in_channels, width, depth, norm)
        c = self.encoder.channels
        self.decoder = nn.ModuleList(_block(c[i + 1] + c[i], c[i], norm) for i in reversed(range(depth)))
        self.head = nn.Conv2d(c[0], out_channels, 1)

    def net_forward(self, x: Tensor) -> Tensor:
        feats = self.encoder(x)
        y = feats[-1]
        for block, skip in zip(self.decoder, reversed(feats[:-1]), strict=True):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
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
    ) -> None:
        super().__init__()
        _check(in_channels, out_channels, width, depth)
        self.depth = depth
        self.encoder = _Encoder(in_channels, width, depth, norm)
        self.scores = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in self.encoder.channels)

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
) -> nn.Module:
    """The model ``name`` (``"unet"`` or ``"fcn"``) with the given head and size."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(MODELS)}")
    return MODELS[name](in_channels, out_channels, width, depth, norm)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
