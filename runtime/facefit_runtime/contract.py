"""What a denoiser promises a compiled runtime: tensor names, shapes and the batch range.

Every backend that compiles the model ahead of time (ONNX Runtime, TensorRT) needs
to know the inputs' names and shapes before it sees a call. Like each model in
NVIDIA's ``demo/Diffusion``, a denoiser declares an :class:`ExportContract`: the
input and output names, which axes are dynamic, the min/opt/max shapes of the
optimization profile, and a sample input to trace with. Only the batch is
dynamic: facefit's conditioners have fixed token shapes and the generator a fixed
image size, so everything else is static and kernels can be chosen for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from facefit.errors import InputError

if TYPE_CHECKING:
    import torch

INPUT_NAMES = ("sample", "timestep", "encoder_hidden_states")
OUTPUT_NAME = "prediction"
BATCH_AXIS = "batch"


@dataclass(frozen=True)
class ShapeProfile:
    """The batch range an engine is built for, and the static per-item shapes.

    ``batch`` is ``(min, opt, max)``: TensorRT tunes kernels for ``opt`` and
    accepts anything in ``[min, max]``. With classifier-free guidance the
    denoiser sees twice the number of images (conditional + unconditional).
    """

    batch: tuple[int, int, int]
    channels: int
    height: int
    width: int
    num_tokens: int
    token_dim: int
    out_channels: int | None = None

    def __post_init__(self) -> None:
        lo, opt, hi = self.batch
        if not 1 <= lo <= opt <= hi:
            raise InputError(
                f"shape profile batch must satisfy 1 <= min <= opt <= max, got {self.batch}"
            )
        for name in ("channels", "height", "width", "num_tokens", "token_dim"):
            if getattr(self, name) < 1:
                raise InputError(
                    f"shape profile {name} must be positive, got {getattr(self, name)}"
                )

    @property
    def output_channels(self) -> int:
        return self.out_channels or self.channels

    def input_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Every input's shape at one batch size."""
        return {
            "sample": (batch, self.channels, self.height, self.width),
            "timestep": (batch,),
            "encoder_hidden_states": (batch, self.num_tokens, self.token_dim),
        }

    def output_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.output_channels, self.height, self.width)

    def min_opt_max(self) -> dict[str, tuple[tuple[int, ...], ...]]:
        """``{input name: (min shape, opt shape, max shape)}`` for an optimization profile."""
        lo, opt, hi = (self.input_shapes(b) for b in self.batch)
        return {name: (lo[name], opt[name], hi[name]) for name in INPUT_NAMES}

    def accepts(self, batch: int) -> bool:
        return self.batch[0] <= batch <= self.batch[2]

    def with_batch(self, lo: int, opt: int, hi: int) -> ShapeProfile:
        return replace(self, batch=(lo, opt, hi))

    @property
    def key(self) -> str:
        """A short, stable text naming this profile (part of cache keys and file names)."""
        lo, opt, hi = self.batch
        return (
            f"b{lo}-{opt}-{hi}_x{self.channels}x{self.height}x{self.width}"
            f"_t{self.num_tokens}x{self.token_dim}_o{self.output_channels}"
        )


@dataclass(frozen=True)
class ExportContract:
    """Names, dynamic axes and the shape profile of one denoiser export."""

    profile: ShapeProfile
    input_names: tuple[str, ...] = INPUT_NAMES
    output_names: tuple[str, ...] = (OUTPUT_NAME,)

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Only the batch axis (0) of every input and output is dynamic."""
        return {name: {0: BATCH_AXIS} for name in (*self.input_names, *self.output_names)}

    def sample_inputs(
        self, batch: int | None = None, *, device: Any = "cpu", dtype: Any = None, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random ``(sample, timestep, encoder_hidden_states)`` at ``batch`` (default: opt)."""
        import torch

        batch = self.profile.batch[1] if batch is None else batch
        dtype = dtype or torch.float32
        shapes = self.profile.input_shapes(batch)
        gen = torch.Generator().manual_seed(seed)
        sample = torch.randn(shapes["sample"], generator=gen, dtype=torch.float32)
        tokens = torch.randn(shapes["encoder_hidden_states"], generator=gen, dtype=torch.float32)
        timestep = torch.randint(0, 1000, shapes["timestep"], generator=gen).float()
        return (
            sample.to(device=device, dtype=dtype),
            timestep.to(device=device),
            tokens.to(device=device, dtype=dtype),
        )


def _config_value(model: Any, *names: str) -> Any:
    config = getattr(model, "config", None)
    for name in names:
        for source in (config, model):
            value = getattr(source, name, None) if source is not None else None
            if value is None and isinstance(config, dict) and source is config:
                value = config.get(name)
            if value is not None:
                return value
    return None


def contract_for(
    model: Any,
    *,
    batch: tuple[int, int, int] = (1, 2, 8),
    num_tokens: int | None = None,
    image_size: int | tuple[int, int] | None = None,
) -> ExportContract:
    """The export contract of a denoiser, read from its config where it says.

    Works for a diffusers ``UNet2DConditionModel`` (``in_channels``,
    ``sample_size``, ``cross_attention_dim``; the token count is not in its config,
    so pass ``num_tokens`` — 77 for Stable Diffusion) and for any module that
    exposes ``in_channels``, ``out_channels``, ``sample_size``/``image_size``,
    ``num_tokens`` and ``token_dim``/``cross_attention_dim`` as attributes or in
    its ``config``.
    """
    channels = _config_value(model, "in_channels")
    out_channels = _config_value(model, "out_channels")
    size = image_size or _config_value(model, "sample_size", "image_size")
    tokens = num_tokens or _config_value(model, "num_tokens")
    dim = _config_value(model, "token_dim", "cross_attention_dim")
    if isinstance(dim, (list, tuple)):
        dim = dim[0]
    missing = [
        what
        for what, value in (
            ("in_channels", channels),
            ("sample_size (or image_size=)", size),
            ("num_tokens (num_tokens=)", tokens),
            ("cross_attention_dim", dim),
        )
        if value is None
    ]
    if missing:
        raise InputError(
            f"cannot tell the export shapes of {type(model).__name__}: missing "
            f"{', '.join(missing)}; pass them to contract_for() or build an ExportContract"
        )
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    profile = ShapeProfile(
        batch=tuple(batch),
        channels=int(channels),
        height=int(height),
        width=int(width),
        num_tokens=int(tokens),
        token_dim=int(dim),
        out_channels=int(out_channels) if out_channels else None,
    )
    return ExportContract(profile)
