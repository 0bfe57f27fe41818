"""``facefit generate``: evidence in, candidate faces and ranked identities out.

facefit generate --sketch s.png --text "a man with a beard" -g mugshots.gallery --out run1
facefit generate --manifest probes.csv -g mugshots.gallery --out runs/   # batch (--resume)
facefit generate --replay run1/provenance.json --out run1-again         # same result.json

An --out folder that holds anything is refused before any model loads, unless
--force (a single run) or --resume/--force (a batch). Evidence without a usable
face is refused unless --allow-no-face names its kind; then it is flagged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from facefit.errors import InputError

__all__ = ["generate", "parse_choice"]

CHOICE_HELP = (
    "pick N (steer with candidate N) · reject N M … · accept (stop here) · "
    "Enter: let the loop decide"
)


def parse_choice(text: str) -> Any:
    """An investigator's typed answer → :class:`~facefit.pipeline.Choice` (None: no choice)."""
    from facefit.pipeline import Choice

    words = text.replace(",", " ").split()
    if not words:
        return None
    pick, reject, accept, mode = None, [], False, None
    for word in words:
        lower = word.lower()
        if lower in ("pick", "p", "reject", "r"):
            mode = lower[0]
        elif lower in ("accept", "a", "done"):
            accept = True
        elif word.isdigit() and mode == "p" and pick is None:
            pick = int(word)
        elif word.isdigit() and mode == "r":
            reject.append(int(word))
        else:
            raise InputError(f"cannot read {text!r}; answer with: {CHOICE_HELP}")
    return Choice(pick=pick, reject=tuple(reject), accept=accept)


def _ask(trace: Any) -> Any:
    click.echo(f"\nround {trace.round} — reference: {trace.reference or 'evidence only'}")
    for c in trace.candidates:
        top = f"{c.matches[0].identity} ({c.matches[0].score:.3f})" if c.matches else "-"
        scores = " ".join(f"{k} {v:.3f}" for k, v in c.evidence_scores.items()) or "unscored"
        click.echo(f"  candidate {c.index}: consistency {c.consistency:.3f} [{scores}] top {top}")
    while True:
        answer = click.prompt(CHOICE_HELP, default="", show_default=False)
        try:
            choice = parse_choice(answer)
            if choice is not None:
                choice.check(len(trace.candidates))
            return choice
        except InputError as exc:
            click.echo(f"  {exc}", err=True)


def _config(config_path: Path | None, replay: dict | None, overrides: dict[str, Any]) -> Any:
    from facefit.config import PipelineConfig, load_config
    from facefit.pipeline.provenance import config_from_provenance

    if replay is not None:
        config = config_from_provenance(replay)
    elif config_path is not None:
        config = load_config(config_path)
    else:
        config = PipelineConfig()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return config.replace_settings(**changes) if changes else config


def _registry() -> Any:
    """The registry in ``ctx.obj["registry"]`` (tests, embedding apps), else the installed one."""
    obj = click.get_current_context().find_root().obj
    if isinstance(obj, dict) and obj.get("registry") is not None:
        return obj["registry"]
    from facefit.registry import Registry

    return Registry.load()


def _print_cautions(result: Any) -> None:
    """Say loudly, before the ranking, which evidence was used without a verified face."""
    from facefit.pipeline.output import cautions

    flags = cautions(result)
    if flags:
        click.secho(
            "CAUTION: evidence used without a verified face (allowed by --allow-no-face); "
            "the ranking below rests on it and is of low confidence:",
            fg="red",
            bold=True,
        )
        for note in flags:
            click.secho(f"  {note}", fg="red")


def _print_result(result: Any, out: Path) -> None:
    _print_cautions(result)
    fusion = result.provenance.get("fusion") or {}
    if result.no_likely_match:
        click.secho(
            f"NO LIKELY MATCH: every identity's probability is below "
            f"{fusion['no_match_threshold']:g} (best {fusion['top_probability']:.3f}); the "
            "gallery probably does not hold this person",
            fg="yellow",
            bold=True,
        )
    for note in fusion.get("notes", []):
        click.echo(f"  {note}")
    click.echo(
        f"{result.provenance.get('stopped')}; ranked identities (evidence and rounds fused; "
        "raw score, probability):"
    )
    for match in result.top(10):
        chance = "" if match.probability is None else f"  p={match.probability:.3f}"
        click.echo(f"  {match.rank:>3}. {match.identity}  {match.score:.4f}{chance}")
    if not result.matches:
        click.echo("  (no gallery given: nothing ranked)")
    click.echo(f"candidates and contact sheet: {out / 'contact_sheet.png'}")


def _load_replay(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read provenance ({exc})") from None
    if not str(data.get("format", "")).startswith("facefit-provenance/"):
        raise InputError(f"{path}: not a facefit provenance.json")
    return data


def _replay_inputs(replay: dict) -> tuple[dict[str, str], list[str], str | None]:
    from facefit.files import sha256_file

    paths = {}
    for modality, item in replay.get("inputs", {}).items():
        path = item["path"]
        if not Path(path).is_file() or sha256_file(path) != item["sha256"]:
            raise InputError(f"replay: input {modality} {path} is missing or changed since the run")
        paths[modality] = path
    gallery = (replay.get("gallery") or {}).get("path")
    texts = replay.get("texts")
    if texts is None:  # a provenance from before several descriptions were taken
        texts = [replay["text"]] if replay.get("text") is not None else []
    return paths, list(texts), gallery


def _listed(paths: dict[str, str], modality: str) -> list[str]:
    """A provenance's ``sketch``, ``sketch.2``, … paths in order."""
    keys = [k for k in paths if k == modality or k.startswith(f"{modality}.")]
    return [paths[k] for k in sorted(keys, key=lambda k: int(k.partition(".")[2] or 1))]


def _check_text(texts: tuple[str, ...] | list[str]) -> None:
    """A --text longer than the evidence limit is refused naming the flag, before any work."""
    from facefit.types import MAX_TEXT_CHARS

    for n, text in enumerate(texts, start=1):
        length = len(" ".join((text or "").split()))
        if length > MAX_TEXT_CHARS:
            which = "--text" if len(texts) == 1 else f"--text (description {n})"
            raise InputError(
                f"{which}: the description is {length:,} characters, more than the limit of "
                f"{MAX_TEXT_CHARS:,}; give the witness's words about the face"
            )


def _show_progress(no_progress: bool) -> bool:
    """A bar only where a person watches: not under --no-progress, not into a file or pipe."""
    return not no_progress and sys.stderr.isatty()


@click.command("generate")
@click.option(
    "--sketch",
    type=click.Path(dir_okay=False, exists=True),
    multiple=True,
    help="A drawing of the face; repeat for several witnesses (the first conditions the "
    "generator, every one is matched and fused).",
)
@click.option(
    "--lq",
    type=click.Path(dir_okay=False, exists=True),
    multiple=True,
    help="A low-quality image of the face; repeat for several frames or cameras.",
)
@click.option(
    "--sketch-gallery",
    type=click.Path(file_okay=False),
    help="The same mugshots enrolled with the sketch matcher "
    "(facefit gallery build --encoder sketch-matcher): sketches are matched in it.",
)
@click.option(
    "--fusion-weights",
    type=click.Path(dir_okay=False, exists=True),
    help="Fusion weights file (facefit fusion fit; default: the shipped one).",
)
@click.option(
    "--no-match-threshold",
    type=click.FloatRange(0, 1),
    help="Say 'no likely match' when every identity's probability is below this (default 0.2).",
)
@click.option(
    "--match-prior",
    type=click.FloatRange(0, 1, min_open=True),
    help="Prior probability that the person is in the gallery at all (default 0.5).",
)
@click.option(
    "--text",
    multiple=True,
    help="A description in words; repeat for several witnesses (each is scored and "
    "recorded, and each conditions an equal share of every round's candidates).",
)
@click.option(
    "--reference",
    type=click.Path(dir_okay=False, exists=True),
    help="A face photo standing for an identity.",
)
@click.option(
    "-g",
    "--gallery",
    envvar="FACEFIT_GALLERY",
    type=click.Path(file_okay=False),
    help="Gallery to rank identities in (default: $FACEFIT_GALLERY).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (batch: one subfolder per probe).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Pipeline config (TOML).",
)
@click.option(
    "--model", help="Generator model directory (default: the config's, else the shipped default)."
)
@click.option("--rounds", type=int, help="Most rounds of the loop.")
@click.option("--candidates", type=int, help="Candidates per round.")
@click.option("--steps", type=int, help="Sampler steps per candidate.")
@click.option("--guidance", type=float, help="Classifier-free guidance weight.")
@click.option("--seed", type=int, help="Random seed (rounds derive theirs from it).")
@click.option("--device", help="cpu, cuda, cuda:N or auto.")
@click.option("--interactive", is_flag=True, help="Pick or reject candidates after every round.")
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Batch: CSV of probes (id, sketch, lq, text, reference).",
)
@click.option(
    "--replay",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Re-run a provenance.json's inputs and settings.",
)
@click.option(
    "--no-progress",
    is_flag=True,
    help="No progress bar (none is shown when stderr is not a terminal); -v logs each stage.",
)
@click.option(
    "--allow-no-face",
    "allow_no_face",
    multiple=True,
    type=click.Choice(["sketch", "lq", "reference"]),
    help="Use this evidence (repeat for several) even without a detected face: a sketch "
    "framed like a portrait, a small square low-quality crop or a square reference "
    "taken as aligned. Flagged in the output; the ranking is then of low confidence.",
)
@click.option("--force", is_flag=True, help="Replace an earlier run's output in --out.")
@click.option(
    "--resume", is_flag=True, help="Batch: run only the probes not already complete in --out."
)
def generate(
    sketch,
    lq,
    sketch_gallery,
    fusion_weights,
    no_match_threshold,
    match_prior,
    text,
    reference,
    gallery,
    out,
    config_path,
    model,
    rounds,
    candidates,
    steps,
    guidance,
    seed,
    device,
    interactive,
    manifest,
    replay,
    no_progress,
    allow_no_face,
    force,
    resume,
) -> None:
    """Generate candidate faces from evidence and rank gallery identities (the IdentiFace loop)."""
    from dataclasses import replace

    from facefit.pipeline import Pipeline
    from facefit.pipeline.batch import check_batch_out, read_manifest, run_batch
    from facefit.pipeline.files import ProbeFiles, run_probe_files
    from facefit.pipeline.output import check_out

    text = list(text)
    _check_text(text)
    replay_data = _load_replay(replay) if replay is not None else None
    allowed = tuple(allow_no_face)
    if replay_data is not None:
        paths, text, recorded_gallery = _replay_inputs(replay_data)
        sketch, lq = _listed(paths, "sketch"), _listed(paths, "lq")
        reference = paths.get("reference")
        gallery = gallery or recorded_gallery
        sketch_gallery = sketch_gallery or (replay_data.get("sketch_gallery") or {}).get("path")
        allowed = (*replay_data.get("allow_no_face", ()), *allowed)
    overrides = {
        "model": model,
        "rounds": rounds,
        "candidates": candidates,
        "steps": steps,
        "guidance": guidance,
        "seed": seed,
        "device": device,
        "no_match_threshold": no_match_threshold,
        "match_prior": match_prior,
    }
    probes = read_manifest(manifest) if manifest is not None else None
    if probes is None:
        if resume:
            raise InputError("--resume continues a batch; give --manifest, or use --force")
        check_out(out, force=force)  # before any model loads: never lose a run to it
        probe = ProbeFiles.from_lists(sketch, lq, text, reference=reference)
        probe = replace(probe, allow_no_face=allowed)
        probe.load()  # no evidence / unreadable file: fail before any model is loaded
    elif interactive:
        raise InputError("--interactive runs one probe at a time; leave out --manifest")
    else:
        check_batch_out(out, resume=resume, force=force)
        probes = [replace(p, allow_no_face=allowed) for p in probes]
    config = _config(config_path, replay_data, overrides)
    pipeline = Pipeline(
        config,
        registry=_registry(),
        gallery=gallery,
        sketch_gallery=sketch_gallery,
        fusion=fusion_weights,
    )
    if probes is not None:
        report = run_batch(
            pipeline,
            probes,
            out,
            progress=_show_progress(no_progress),
            resume=resume,
            force=force,
        )
        click.echo(
            f"{out}: {len(report.done)} probes done, {len(report.skipped)} already complete, "
            f"{len(report.failed)} failed"
        )
        for probe_id, why in report.failed:
            click.echo(f"  {probe_id}: {why}", err=True)
        if report.failed:
            sys.exit(1)
        return
    from facefit.pipeline.progress import ProgressBar, ProgressLog, progress_to

    # prompts and a bar do not mix
    bar = ProgressBar(disable=not _show_progress(no_progress) or interactive)
    try:
        result = run_probe_files(
            pipeline,
            probe,
            out,
            on_round=_ask if interactive else None,
            command=sys.argv[1:],
            progress=progress_to(bar, ProgressLog()),
            force=force,
        )
    finally:
        bar.close()
    _print_result(result, out)
