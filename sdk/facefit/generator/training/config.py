"""The training configuration: ``[train]``, ``[model]``, ``[data]`` and ``[loss.identity]``.

See :mod:`facefit.generator.training.trainer` for the file format and the run itself.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facefit.errors import ConfigError
from facefit.generator.training.data import Augmentation
from facefit.settings import at_least, check_fields, one_of

IDENTITY_DEFAULTS = {
    "weight": 0.1,
    "threshold": 0.385,
    "alpha": 10.0,
    "t_limit": 200,
    "recognizer": "sface",
}


_TRAIN_RULES = {
    "steps": at_least(1),
    "batch_size": at_least(1),
    "checkpoint_every": at_least(1),
    "sample_every": at_least(1),
    "log_every": at_least(1),
    "mixed_precision": one_of(("auto", "no", "bf16", "fp16")),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (the ``[train]`` table plus the others)."""

    pack: str
    out: str
    steps: int = 20000
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    ema_decay: float = 0.9995
    grad_clip: float = 1.0
    snr_gamma: float = 0.0
    """Min-SNR-γ loss weighting (γ = 5 is the paper's); 0 turns it off."""
    mixed_precision: str = "auto"
    """``auto`` (bf16 on a GPU that has it, else fp16; none on CPU), ``no``, ``bf16``, ``fp16``."""
    device: str = "auto"
    seed: int = 0
    threads: int = 0
    """CPU threads for torch (0: torch's default)."""
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    sample_every: int = 1000
    sample_steps: int = 25
    sample_count: int = 4
    sample_guidance: float = 2.0
    log_every: int = 10
    export_fp16: bool = True
    model: dict[str, Any] = field(default_factory=dict)
    data: Augmentation = field(default_factory=Augmentation)
    identity: dict[str, Any] = field(default_factory=lambda: dict(IDENTITY_DEFAULTS))

    def __post_init__(self) -> None:
        check_fields(self, _TRAIN_RULES, error=ConfigError, where="[train] ")
        unknown = set(self.identity) - set(IDENTITY_DEFAULTS)
        if unknown:
            raise ConfigError(
                f"[loss.identity] unknown key(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(IDENTITY_DEFAULTS)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a training config; relative paths are taken from the file's folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: training config not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    known = {"train", "model", "data", "loss"}
    if set(data) - known:
        raise ConfigError(
            f"{path}: unknown table(s) {', '.join(sorted(set(data) - known))}; known: "
            + ", ".join(sorted(known))
        )
    train = dict(data.get("train", {}))
    for key in ("pack", "out"):  # paths in the file are relative to the file
        if key in train:
            train[key] = str((path.parent / train[key]).resolve())
        if overrides.get(key) is not None:  # paths on the command line: to the working folder
            overrides[key] = str(Path(overrides[key]).resolve())
    train.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("pack", "out"):
        if key not in train:
            raise ConfigError(f'{path}: [train] needs {key} = "..."')
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "data", "identity"}
    unknown = set(train) - fields
    if unknown:
        raise ConfigError(f"{path}: unknown [train] key(s) {', '.join(sorted(unknown))}")
    aug = dict(data.get("data", {}))
    if "lq_sizes" in aug:
        aug["lq_sizes"] = tuple(aug["lq_sizes"])
    try:
        augmentation = Augmentation(**aug)
    except TypeError as exc:
        raise ConfigError(f"{path}: [data] {exc}") from None
    identity = {**IDENTITY_DEFAULTS, **data.get("loss", {}).get("identity", {})}
    try:
        return TrainConfig(
            **train, model=dict(data.get("model", {})), data=augmentation, identity=identity
        )
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
