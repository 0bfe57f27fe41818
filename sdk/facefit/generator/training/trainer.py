"""Training the generator: ``facefit train CONFIG.toml``.

A config names a training pack and an output folder, and may set the model,
the augmentation and the identity loss::

    [train]
    pack = "pack-64.npz"          # relative to this file
    out = "runs/cpu-small"
    steps = 20000
    batch_size = 32

    [model]                       # FaceGenerator options (sizes of the evidence come from the pack)
    block_out_channels = [32, 64, 128, 128]

    [data]                        # Augmentation options
    lq_sizes = [8, 12, 16, 24, 32]
    [data.drop]
    reference = 0.5

    [loss.identity]               # IdentiFace's identity loss; weight 0 turns it off
    weight = 0.1
    threshold = 0.385
    alpha = 10.0
    t_limit = 200

The output folder gets ``checkpoints/`` (resumed from automatically), ``samples/``
(a grid every ``sample_every`` steps: sketch, low-quality copy, generated, true
photo), ``metrics.jsonl`` and ``model/``: the EMA weights as a diffusers-style
directory with a model card. Runs are deterministic for a seed on one machine,
also across an interruption and resume.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path
from typing import Any

from facefit.devices import resolve_device
from facefit.errors import ConfigError
from facefit.generator.training.config import IDENTITY_DEFAULTS, TrainConfig, load_train_config
from facefit.generator.training.data import TrainingBatches, TrainingPack

__all__ = [
    "IDENTITY_DEFAULTS",
    "TrainConfig",
    "Trainer",
    "load_train_config",
    "seconds_per_step",
    "train",
]

log = logging.getLogger(__name__)

GROWABLE = {"text_attributes": "attribute_proj."}
"""Model settings a run may switch on over weights trained without them (``--init-from``),
with the prefix of the zero-initialised layers each adds."""


class Trainer:
    """One training run: model, EMA, optimizer, data and checkpoints.

    ``recognizer`` replaces the identity loss's face recogniser (tests pass a
    tiny module; the default loads SFace when the identity weight is non-zero).
    """

    def __init__(
        self, config: TrainConfig, *, pack: TrainingPack | None = None, recognizer: Any = None
    ) -> None:
        import torch
        from diffusers.training_utils import EMAModel

        from facefit.generator.model import FaceGenerator
        from facefit.generator.noise import noise_scheduler
        from facefit.registry import Registry

        self.config = config
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.device = torch.device(resolve_device(config.device, "training device"))
        self.pack = pack if pack is not None else TrainingPack.load(config.pack)
        torch.manual_seed(config.seed)
        self.model = FaceGenerator(**self.model_options()).to(self.device)
        self.model.train()
        self.ema = EMAModel(
            self.model.parameters(), decay=config.ema_decay, use_ema_warmup=True, power=3 / 4
        )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        warmup = max(1, config.warmup_steps)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup)
        )
        self.autocast_dtype = self._autocast_dtype()
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.autocast_dtype == torch.float16
        )
        self.noise = noise_scheduler(self.model)
        self.batches = TrainingBatches(self.pack, config.data)
        self.data_rng = torch.Generator().manual_seed(config.seed)
        self.noise_rng = torch.Generator().manual_seed(config.seed + 1)
        registry = Registry.load()
        self.diffusion_loss = registry.create_loss("diffusion")
        identity = dict(config.identity)
        self.identity_loss = None
        if float(identity["weight"]) > 0:
            if recognizer is not None:
                identity["recognizer"] = recognizer
            self.identity_loss = registry.create_loss("identity", **identity)
            self.identity_loss.recognizer.to(self.device)
        self.step = 0
        self.seconds = 0.0
        self.out = Path(config.out)

    def model_options(self) -> dict[str, Any]:
        """FaceGenerator options: the config's ``[model]`` plus the pack's evidence shapes."""
        pack = self.pack
        tokens, dim = pack.text_shape
        fixed = {
            "image_size": pack.image_size,
            "identity_dim": pack.identity_dim,
            "text_tokens": tokens,
            "text_dim": dim,
        }
        for key in ("face_encoder", "text_encoder", "sketch_extractor"):
            if key in pack.meta:
                fixed[key] = pack.meta[key]
        clash = {k for k in fixed if k in self.config.model and self.config.model[k] != fixed[k]}
        if clash:
            raise ConfigError(
                f"[model] {', '.join(sorted(clash))} must match the training pack "
                f"({', '.join(f'{k}={fixed[k]}' for k in sorted(clash))}); remove them from [model]"
            )
        return {**self.config.model, **fixed}

    def _autocast_dtype(self) -> Any:
        import torch

        mode = self.config.mixed_precision
        if self.device.type != "cuda" or mode == "no":
            return None
        if mode == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if mode == "bf16" else torch.float16

    # -- one step --------------------------------------------------------------------------

    def compute_losses(self, x0: Any, cond: Any, noise: Any, timesteps: Any) -> dict[str, Any]:
        """The losses for one batch with given noise and timesteps (differentiable)."""
        import torch

        from facefit.generator.noise import min_snr_weights, predict_x0, training_target
        from facefit.interfaces import LossInputs

        x0, noise, timesteps = (v.to(self.device) for v in (x0, noise, timesteps))
        cond = cond.to(self.device)
        noisy = self.noise.add_noise(x0, noise, timesteps)
        with torch.autocast(
            self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            prediction = self.model(noisy, timesteps, cond)
        target = training_target(self.noise, x0, noise, timesteps)
        extra = None
        if self.config.snr_gamma > 0:
            extra = {"weights": min_snr_weights(self.noise, timesteps, self.config.snr_gamma)}
        losses = {"diffusion": self.diffusion_loss(LossInputs(prediction, target, extra=extra))}
        if self.identity_loss is not None:
            photo = cond.domain == 0  # the identity of an artist's sketch is not a photo's
            x0_pred = predict_x0(self.noise, noisy[photo], prediction[photo], timesteps[photo])
            losses["identity"] = self.identity_loss(
                LossInputs(
                    prediction[photo],
                    target[photo],
                    x0=x0[photo],
                    x0_pred=x0_pred,
                    timesteps=timesteps[photo],
                )
            )
        losses["loss"] = sum(losses.values())
        return losses

    def draw(self) -> tuple[Any, Any, Any, Any]:
        """The next batch with its noise and timesteps, from the run's generators."""
        import torch

        batch = self.config.batch_size
        x0, cond = self.batches(batch, self.data_rng)
        noise = torch.randn(x0.shape, generator=self.noise_rng)
        steps = self.noise.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (batch,), generator=self.noise_rng)
        return x0, cond, noise, timesteps

    def train_step(self) -> dict[str, float]:
        import torch

        losses = self.compute_losses(*self.draw())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["loss"]).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lr_schedule.step()
        self.ema.step(self.model.parameters())
        self.step += 1
        values = {k: float(v.detach()) for k, v in losses.items()}
        values["grad_norm"] = float(grad_norm)
        return values

    # -- the run ---------------------------------------------------------------------------

    def fit(self, steps: int | None = None, *, progress: bool = True) -> dict[str, float]:
        """Train up to ``steps`` (default: the config's) total steps; returns the last losses."""
        from tqdm import tqdm

        total = steps or self.config.steps
        self.out.mkdir(parents=True, exist_ok=True)
        bar = tqdm(
            total=total, initial=self.step, desc="training", unit="step", disable=not progress
        )
        last: dict[str, float] = {}
        smooth = None
        metrics = (self.out / "metrics.jsonl").open("a", encoding="utf-8")
        try:
            while self.step < total:
                started = time.perf_counter()
                last = self.train_step()
                elapsed = time.perf_counter() - started
                self.seconds += elapsed
                smooth = last["loss"] if smooth is None else 0.95 * smooth + 0.05 * last["loss"]
                bar.update(1)
                bar.set_postfix(loss=f"{smooth:.4f}", s_step=f"{elapsed:.2f}")
                if self.step % self.config.log_every == 0 or self.step == total:
                    record = {"step": self.step, "seconds": round(elapsed, 4), **last}
                    record["lr"] = self.lr_schedule.get_last_lr()[0]
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                if self.step % self.config.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.step % self.config.sample_every == 0:
                    self.sample_grid(self.out / "samples" / f"step-{self.step:06d}.png")
        except KeyboardInterrupt:
            log.warning("interrupted at step %d: saving a checkpoint", self.step)
            self.save_checkpoint()
            raise
        finally:
            bar.close()
            metrics.close()
        if self.step % self.config.checkpoint_every:
            self.save_checkpoint()
        return last

    # -- checkpoints -----------------------------------------------------------------------

    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoints"

    def save_checkpoint(self) -> Path:
        """Everything needed to continue exactly where the run is."""
        import torch

        directory = self.checkpoint_dir()
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "step": self.step,
            "seconds": self.seconds,
            "model": self.model.state_dict(),
            "model_config": dict(self.model.config),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "data_rng": self.data_rng.get_state(),
            "noise_rng": self.noise_rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "config": self.config.to_dict(),
        }
        path = directory / f"step-{self.step:07d}.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        for old in sorted(directory.glob("step-*.pt"))[: -max(1, self.config.keep_checkpoints)]:
            old.unlink()
        log.info("checkpoint %s", path)
        return path

    def _same_model_config(self, other: Any, grows: tuple[str, ...] = ()) -> bool:
        """Whether ``other`` (a model config) describes this run's model; a setting it
        lacks (saved before the setting existed) counts as the setting's default.
        Settings in ``grows`` may be off in ``other`` and on here (see :data:`GROWABLE`)."""
        import inspect

        from facefit.generator.model import FaceGenerator

        defaults = {
            name: p.default
            for name, p in inspect.signature(FaceGenerator.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty
        }

        def public(config: Any, grown: dict[str, Any]) -> str:
            items = {k: v for k, v in dict(config).items() if not k.startswith("_")}
            return json.dumps({**defaults, **items, **grown}, default=list, sort_keys=True)

        mine = dict(self.model.config)
        grown = {k: mine[k] for k in grows if mine.get(k) and not dict(other).get(k)}
        return public(mine, {}) == public(other, grown)

    def latest_checkpoint(self) -> Path | None:
        found = sorted(self.checkpoint_dir().glob("step-*.pt"))
        return found[-1] if found else None

    def resume(self, path: str | Path | None = None) -> bool:
        """Continue from ``path`` or the latest checkpoint in the output folder, if any."""
        import torch

        path = Path(path) if path else self.latest_checkpoint()
        if path is None:
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not self._same_model_config(state["model_config"]):
            raise ConfigError(
                f"{path}: checkpoint of a different model configuration; "
                "use a new output folder or the same [model] table"
            )
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.ema.to(self.device)  # EMAModel takes the loaded (CPU) tensors as they are
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.data_rng.set_state(state["data_rng"])
        self.noise_rng.set_state(state["noise_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.seconds = float(state.get("seconds", 0.0))
        log.info("resumed from %s at step %d", path, self.step)
        return True

    def init_from(self, model_dir: str | Path) -> None:
        """Start from an exported model's weights (``OUT/model``) when no checkpoint exists.

        For carrying a run across machines with only its committed weights: the
        model and its EMA start from those weights and the step count from its
        ``training.json``; the optimizer and the random streams start afresh, so the
        run does not continue bit-exactly. A setting in :data:`GROWABLE` may be on
        here and off in the source: its new layers start at zero, so the model begins
        exactly where the source was.
        """
        import torch

        from facefit.generator.model import FaceGenerator

        directory = Path(model_dir)
        source = FaceGenerator.from_pretrained(directory).to(torch.float32)
        if not self._same_model_config(source.config, grows=tuple(GROWABLE)):
            raise ConfigError(
                f"{directory}: a model of another configuration; use the [model] table "
                f"it was trained with (it may add only {', '.join(GROWABLE)})"
            )
        missing, unexpected = self.model.load_state_dict(source.state_dict(), strict=False)
        new_layers = tuple(GROWABLE.values())
        if unexpected or any(not key.startswith(new_layers) for key in missing):
            raise ConfigError(f"{directory}: weights do not fit this model: {missing + unexpected}")
        self.ema.shadow_params = [p.detach().clone() for p in self.model.parameters()]
        record = directory / "training.json"
        if record.is_file():
            self.step = int(json.loads(record.read_text(encoding="utf-8"))["record"]["steps"])
        log.info("initialised from %s at step %d", directory, self.step)

    # -- results ---------------------------------------------------------------------------

    def ema_model(self) -> Any:
        """A copy of the model holding the EMA weights, in eval mode."""
        model = copy.deepcopy(self.model)
        self.ema.copy_to(model.parameters())
        return model.eval().requires_grad_(False)

    def training_record(self) -> dict[str, Any]:
        sources = sorted(set(self.pack.sources.tolist()))
        return {
            "steps": self.step,
            "batch_size": self.config.batch_size,
            "images": len(self.pack),
            "seconds": round(self.seconds, 1),
            "device": str(self.device),
            "identity_loss": self.config.identity if self.identity_loss else "off",
            "pack": {k: v for k, v in self.pack.meta.items() if k != "version"},
            "sources": sources,
            "license": "other (see data terms)",
        }

    def export(self, directory: str | Path | None = None, metrics: dict | None = None) -> Path:
        """Write the EMA weights and a model card as a diffusers-style directory."""
        from facefit.generator.card import model_card

        directory = Path(directory) if directory else self.out / "model"
        model = self.ema_model()
        card = model_card(model, self.training_record(), metrics)
        model.save_pretrained(directory, fp16=self.config.export_fp16, card=card)
        (directory / "training.json").write_text(
            json.dumps(
                {"config": self.config.to_dict(), "record": self.training_record()},
                indent=2,
                default=str,
            ),
            encoding="utf-8",
        )
        return directory

    def sample_grid(self, path: str | Path, model: Any = None) -> Path:
        """Rows of sketch | low-quality copy | generated | true photo, for fixed pack items."""
        from facefit.generator.grid import evidence_grid

        return evidence_grid(
            model or self.ema_model(),
            self.pack,
            path,
            count=self.config.sample_count,
            steps=self.config.sample_steps,
            guidance=self.config.sample_guidance,
            seed=self.config.seed,
        )


def train(
    config: TrainConfig,
    *,
    resume: bool = True,
    progress: bool = True,
    init_from: str | Path | None = None,
) -> Path:
    """Run training to ``config.steps`` and export the EMA model; returns its directory.

    Resumes from the output folder's last checkpoint; without one, ``init_from`` (an
    exported model directory) gives the starting weights (:meth:`Trainer.init_from`).
    """
    trainer = Trainer(config)
    log.info(
        "generator: %.2f M parameters on %s; pack: %d items",
        trainer.model.parameter_count() / 1e6,
        trainer.device,
        len(trainer.pack),
    )
    resumed = trainer.resume() if resume else False
    if not resumed and init_from is not None:
        trainer.init_from(init_from)
    trainer.fit(progress=progress)
    trainer.sample_grid(trainer.out / "samples" / f"step-{trainer.step:06d}.png")
    return trainer.export()


def seconds_per_step(trainer: Trainer, steps: int = 10, warmup: int = 2) -> tuple[float, float]:
    """Mean ``(wall, CPU)`` seconds of ``steps`` training steps after ``warmup``.

    CPU time sums all threads of this process; on a machine shared with other
    work it shows what a step costs when the wall time does not.
    """
    for _ in range(warmup):
        trainer.train_step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        trainer.train_step()
    n = max(1, steps)
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n
