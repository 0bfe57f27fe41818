"""AdaFace's networks in torch: the IR / IR-SE backbones and the adaptive-margin head.

The backbones reproduce the layout of ``net.py`` in the AdaFace repository
(github.com/mk-minchul/AdaFace, MIT): module and parameter names match, so the
official checkpoints load with ``load_state_dict`` after dropping their ``model.``
prefix. Input: 112×112 BGR faces scaled to [-1, 1]; output: the L2-normalized
512-d embedding and its norm (AdaFace's quality signal).

This module imports torch at the top; :mod:`facefit_plugins.face_encoders.adaface` imports it
only when an encoder or loss is created.
"""

from __future__ import annotations

import argparse
import math
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facefit.errors import InputError, WeightsNotFoundError
from facefit.interfaces import Loss, LossInputs

ARCHS: dict[str, tuple[int, str]] = {
    "ir_18": (18, "ir"),
    "ir_34": (34, "ir"),
    "ir_50": (50, "ir"),
    "ir_101": (100, "ir"),
    "ir_se_50": (50, "ir_se"),
    "ir_se_101": (100, "ir_se"),
}
"""Architecture name → (depth as written in ``net.py``, unit type)."""

# units per stage (64, 128, 256, 512 channels) for each depth
_STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}
_WIDTHS = (64, 128, 256, 512)

CHECKPOINT_HELP = (
    "pass option checkpoint = the path of an AdaFace checkpoint (.ckpt, e.g. "
    "adaface_ir50_ms1mv2.ckpt from github.com/mk-minchul/AdaFace, whose 'state_dict' keys "
    "start with 'model.')"
)


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.size(0), -1)


class SEModule(nn.Module):
    """Squeeze-and-excitation with 1×1 convolutions (names as in ``net.py``)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * scale


class BasicBlockIR(nn.Module):
    """Improved residual unit: BN-conv-BN-PReLU-conv(stride)-BN, plus the shortcut."""

    def __init__(self, in_channel: int, depth: int, stride: int, se: bool = False) -> None:
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, 3, 1, 1, bias=False),
            nn.BatchNorm2d(depth),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )
        if se:
            self.res_layer.add_module("se_block", SEModule(depth, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class Backbone(nn.Module):
    """IR / IR-SE backbone for 112×112 faces → (normalized 512-d embedding, its norm)."""

    def __init__(self, arch: str = "ir_50") -> None:
        super().__init__()
        if arch not in ARCHS:
            raise InputError(f"adaface: unknown arch {arch!r}; known: {', '.join(ARCHS)}")
        self.arch = arch
        depth, mode = ARCHS[arch]
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        units = []
        in_channel = 64
        for width, count in zip(_WIDTHS, _STAGES[depth]):
            for i in range(count):
                stride = 2 if i == 0 else 1
                units.append(BasicBlockIR(in_channel, width, stride, se=mode == "ir_se"))
                in_channel = width
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(0.4),
            Flatten(),
            nn.Linear(512 * 7 * 7, 512),
            nn.BatchNorm1d(512, affine=False),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.output_layer(self.body(self.input_layer(x)))
        norm = torch.norm(features, 2, 1, True)
        return features / norm, norm


def infer_arch(state: dict[str, torch.Tensor]) -> str:
    """The architecture whose layout a backbone state dict has (counts body units)."""
    units = {int(key.split(".")[1]) for key in state if key.startswith("body.")}
    se = any(".se_block." in key for key in state)
    for name, (depth, mode) in ARCHS.items():
        if len(units) == sum(_STAGES[depth]) and (mode == "ir_se") == se:
            return name
    raise InputError(
        f"adaface: the checkpoint's backbone has {len(units)} residual units"
        f"{' with SE blocks' if se else ''}, which matches none of {', '.join(ARCHS)}"
    )


def load_backbone_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The backbone weights of an AdaFace checkpoint, without the ``model.`` prefix.

    Reads with ``torch.load(weights_only=True)``; ``argparse.Namespace`` (hyper-
    parameters saved by PyTorch Lightning) is the only non-tensor type allowed. A
    bare backbone state dict (keys ``input_layer.…``) is accepted too.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"adaface: checkpoint {path} not found; {CHECKPOINT_HELP}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise InputError(
            f"adaface: cannot read checkpoint {path} safely ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}). If you trust the file, keep only its weights: "
            f"python -c \"import torch; c = torch.load('{path}', weights_only=False); "
            f"torch.save({{'state_dict': c['state_dict']}}, 'adaface_weights.ckpt')\""
        ) from None
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise InputError(f"adaface: {path} holds no state_dict; {CHECKPOINT_HELP}")
    backbone = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    if not backbone and any(k.startswith("input_layer.") for k in state):
        backbone = dict(state)
    if not backbone:
        sample = ", ".join(list(state)[:3])
        raise InputError(
            f"adaface: {path} has no keys starting with 'model.' (found e.g. {sample}); "
            f"{CHECKPOINT_HELP}"
        )
    return backbone


def load_backbone(path: str | Path, arch: str = "auto") -> Backbone:
    """An evaluation-mode :class:`Backbone` with the weights of an AdaFace checkpoint."""
    state = load_backbone_state(path)
    found = infer_arch(state)
    if arch not in ("auto", found):
        raise InputError(
            f"adaface: {path} is an {found} checkpoint, but option arch is {arch!r}; "
            f"set arch = {found!r} (or 'auto')"
        )
    model = Backbone(found)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(
            f"adaface: {path} does not fit the {found} network: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}; {CHECKPOINT_HELP}"
        )
    return model.eval()


class AdaFaceHead(nn.Module):
    """AdaFace's classification head (Kim et al., CVPR 2022): quality-adaptive margins.

    The feature norm ‖z‖, standardised by running batch statistics (EMA with
    ``t_alpha``) and scaled by ``h``, gives ẑ ∈ [−1, 1]. The target logit becomes
    ``s · (cos(θ + g_angle) − g_add)`` with ``g_angle = −m·ẑ`` and ``g_add = m·ẑ + m``:
    ArcFace-like for low-quality samples (ẑ = −1), CosFace for average ones (ẑ = 0),
    and a larger margin on hard high-quality ones (ẑ = 1).
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int = 512,
        m: float = 0.4,
        h: float = 0.333,
        s: float = 64.0,
        t_alpha: float = 0.01,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise InputError(f"AdaFace head: need at least 2 classes, got {num_classes}")
        self.num_classes, self.m, self.h, self.s, self.t_alpha = num_classes, m, h, s, t_alpha
        self.eps = 1e-3
        kernel = torch.empty(embedding_size, num_classes).uniform_(-1, 1)
        self.kernel = nn.Parameter(kernel.renorm_(2, 1, 1e-5).mul_(1e5))
        self.register_buffer("t", torch.zeros(1))
        self.register_buffer("batch_mean", torch.ones(1) * 20)
        self.register_buffer("batch_std", torch.ones(1) * 100)

    def margin_scaler(self, norms: torch.Tensor) -> torch.Tensor:
        """ẑ for each sample, from the current running statistics, in [−1, 1]."""
        scaler = (norms - self.batch_mean) / (self.batch_std + self.eps) * self.h
        return torch.clip(scaler, -1, 1)

    def forward(
        self, embeddings: torch.Tensor, norms: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """Scaled logits ``(N, num_classes)`` for normalized embeddings and their norms."""
        kernel = self.kernel / torch.norm(self.kernel, 2, 0, True)
        cosine = (embeddings @ kernel).clamp(-1 + self.eps, 1 - self.eps)
        safe_norms = torch.clip(norms, min=0.001, max=100).clone().detach().reshape(-1, 1)
        if self.training and len(safe_norms) > 1:  # std of one sample is undefined
            with torch.no_grad():
                mean, std = safe_norms.mean(), safe_norms.std()
                self.batch_mean.mul_(1 - self.t_alpha).add_(self.t_alpha * mean)
                self.batch_std.mul_(1 - self.t_alpha).add_(self.t_alpha * std)
        scaler = self.margin_scaler(safe_norms)
        target = torch.zeros_like(cosine).scatter_(1, labels.reshape(-1, 1), 1.0)
        g_angular = self.m * scaler * -1
        theta = cosine.acos()
        theta_m = torch.clip(theta + target * g_angular, min=self.eps, max=math.pi - self.eps)
        g_additive = self.m + self.m * scaler
        return (theta_m.cos() - target * g_additive) * self.s


class AdaFaceLoss(Loss, nn.Module):
    """AdaFace's adaptive-margin softmax loss, for training face matchers.

    ``inputs.prediction``: the raw (un-normalized) ``(N, D)`` features of a
    recogniser, whose norms carry the quality signal; or normalized embeddings
    with their norms in ``inputs.extra["norms"]`` (what :class:`Backbone` returns).
    ``inputs.target``: ``(N,)`` integer identity labels. The loss owns the class
    centres (``head.kernel``): optimise its parameters along with the model's.
    """

    name = "adaface"

    def __init__(
        self,
        num_classes: int,
        embedding_size: int = 512,
        m: float = 0.4,
        h: float = 0.333,
        s: float = 64.0,
        t_alpha: float = 0.01,
    ) -> None:
        nn.Module.__init__(self)
        self.head = AdaFaceHead(num_classes, embedding_size, m, h, s, t_alpha)

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        return nn.Module.__call__(self, inputs)

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        features, labels = inputs.prediction, inputs.target
        if features.dim() != 2 or labels.shape != (features.shape[0],):
            raise InputError(
                f"adaface loss: expected features (N, D) and labels (N,), got "
                f"{tuple(features.shape)} and {tuple(labels.shape)}"
            )
        norms = (inputs.extra or {}).get("norms")
        if norms is None:
            norms = torch.norm(features, 2, 1, True)
            embeddings = features / norms.clamp(min=1e-12)
        else:
            embeddings = features
        logits = self.head(embeddings, norms, labels.long())
        return nn.functional.cross_entropy(logits, labels.long())
