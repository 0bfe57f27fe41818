"""``facefit train-matcher``: fine-tune SFace into a sketch-to-mugshot matcher.

facefit train-matcher --data ../shared/data --out models/sketch-matcher
facefit train-matcher --data ../shared/data --synthetic out/aug-celeba --out models/sm-b
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from facefit.errors import InputError
from facefit.matcher.train import BALANCES, CLASSES, PHOTOMETRIC, TrainSettings
from facefit.settings import default_of


def _command() -> str:
    if Path(sys.argv[0]).name in ("facefit", "__main__.py") and "train-matcher" in sys.argv[1:]:
        return shlex.join(["facefit", *sys.argv[1:]])
    return "facefit train-matcher (called from Python)"


@click.command("train-matcher")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Data folder with fs2k-train/: its training split is used, never the dev split.",
)
@click.option(
    "--synthetic",
    "synthetic",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="FS2K-format folder of synthetic sketches (facefit augment); repeatable.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the matcher to (config.json, model.onnx, model.safetensors).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=0),
    default=default_of(TrainSettings, "epochs"),
    show_default=True,
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=default_of(TrainSettings, "lr"),
    show_default=True,
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=2),
    default=default_of(TrainSettings, "batch_size"),
    show_default=True,
)
@click.option("--seed", type=int, default=default_of(TrainSettings, "seed"), show_default=True)
@click.option(
    "--device",
    default=default_of(TrainSettings, "device"),
    show_default=True,
    help="cpu, cuda, cuda:N or auto (training).",
)
@click.option(
    "--val-pairs",
    type=click.IntRange(min=0),
    default=default_of(TrainSettings, "val_pairs"),
    show_default=True,
    help="About this many FS2K training pairs (whole persons) held out to choose the epoch "
    "(0: keep the last epoch).",
)
@click.option(
    "--split",
    default=None,
    help="SFace tensor after which the network trains (default conv_13_relu).",
)
@click.option(
    "--base",
    "base_weights",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="SFace ONNX file to start from (default: as the sface plugin finds it).",
)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for cached crops and features (default $FACEFIT_HOME/matcher-cache).",
)
@click.option(
    "--photo-samples/--no-photo-samples",
    default=default_of(TrainSettings, "photo_samples"),
    show_default=True,
    help="Also classify photos against their own proxies (holds the gallery side in place).",
)
@click.option(
    "--classes",
    type=click.Choice(CLASSES),
    default=default_of(TrainSettings, "classes"),
    show_default=True,
    help="One class per person (pairs of one person share it), per pair (for comparison), "
    "or per pair with the person's other pairs never its negatives (pair-masked).",
)
@click.option(
    "--balance",
    type=click.Choice(BALANCES),
    default=default_of(TrainSettings, "balance"),
    show_default=True,
    help="gender: every epoch draws an equal share of sketches from each gender; skin: "
    "from each apparent skin tone (light, medium, dark); gender-skin: from each gender × "
    "skin-tone cell; style: from each FS2K sketch style; gender-style: from each gender × "
    "style cell.",
)
@click.option(
    "--style-weight",
    "style_weights",
    multiple=True,
    metavar="STYLE=W",
    help="With --balance style or gender-style: give FS2K sketch style STYLE W times the "
    "share of a style not named (repeatable; e.g. 0=2 for the outline drawings).",
)
@click.option(
    "--photometric",
    type=click.Choice(PHOTOMETRIC),
    default=default_of(TrainSettings, "photometric"),
    show_default=True,
    help="Photometric augmentation: jittered copies of the training photos (colour cast, "
    "saturation, brightness, contrast; proxies averaged over them), sketches (brightness, "
    "contrast) or both.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=0),
    default=default_of(TrainSettings, "threads"),
    help="CPU threads (0: all).",
)
@click.option("--force", is_flag=True, help="Overwrite a matcher already in --out.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train_matcher(
    data_dir,
    synthetic,
    out,
    epochs,
    lr,
    batch_size,
    seed,
    device,
    val_pairs,
    split,
    base_weights,
    cache_dir,
    photo_samples,
    classes,
    balance,
    style_weights,
    photometric,
    threads,
    force,
    progress,
) -> None:
    """Train the sketch matcher: SFace's last layers fine-tuned with AdaFace's loss.

    Each training sketch is classified against every person's photo embedding (AdaFace's
    adaptive margin; pairs of one person share a class); photos and sketches share the
    network. The result is the face encoder
    ``sketch-matcher`` (eval: --modes matcher --matcher sketch-matcher --matcher-path OUT).
    """
    from facefit.matcher.files import CONFIG_FILE
    from facefit.matcher.train import TrainSettings, train_matcher

    if data_dir is None and not synthetic:
        raise InputError("train-matcher: give --data DATA_DIR and/or --synthetic DIR")
    if data_dir is not None and not (data_dir / "fs2k-train" / "annotations.json").is_file():
        raise InputError(
            f"--data {data_dir}: no fs2k-train/annotations.json; give the shared data folder"
        )
    if (out / CONFIG_FILE).exists() and not force:
        raise InputError(f"--out {out}: a matcher is already there; pass --force to replace it")
    settings = TrainSettings(
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        device=device,
        val_pairs=val_pairs,
        photo_samples=photo_samples,
        classes=classes,
        balance=balance,
        style_weights=_style_weights(style_weights),
        photometric=photometric,
        threads=threads,
    )
    if split:
        settings.split = split

    def report(row: dict) -> None:
        if "val_rank1" in row:
            loss = "" if row["epoch"] == 0 else f"loss {row['loss']:.3f}, "
            groups = ", ".join(
                f"{k.removeprefix('val_rank1_')} {100 * v:.1f}%"
                for k, v in row.items()
                if k.startswith("val_rank1_")
            )
            styles = ", ".join(
                f"style {k.removeprefix('val_style_rank1_')} {100 * v:.1f}%"
                for k, v in row.items()
                if k.startswith("val_style_rank1_") and k != "val_style_rank1_gap"
            )
            groups = ", ".join(g for g in (groups, styles) if g)
            click.echo(
                f"epoch {row['epoch']}: {loss}validation rank-1 {100 * row['val_rank1']:.1f}%, "
                f"MRR {row['val_mrr']:.3f}" + (f" ({groups})" if groups else ""),
                err=True,
            )

    written = train_matcher(
        out,
        data_dir=data_dir,
        synthetic=synthetic,
        settings=settings,
        base_weights=base_weights,
        cache_dir=cache_dir,
        progress=progress,
        command=_command(),
        on_epoch=report,
    )
    click.echo(f"matcher written to {written}")
    click.echo(
        f"evaluate: facefit eval DATA --split dev --modes direct,matcher "
        f"--matcher sketch-matcher --matcher-path {written} --out OUT"
    )


def _style_weights(values: tuple[str, ...]) -> dict[str, float]:
    """``("0=2",)`` → ``{"0": 2.0}`` (--style-weight)."""
    weights = {}
    for value in values:
        style, sep, weight = value.partition("=")
        try:
            weights[style.strip()] = float(weight)
        except ValueError:
            sep = ""
        if not sep or not style.strip():
            raise InputError(f"--style-weight {value!r}: expected STYLE=W, e.g. 0=2")
    return weights
