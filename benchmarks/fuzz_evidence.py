"""Fuzz the evidence entry points with hostile files and count what happens.

Generates ``--n`` hostile inputs — the kinds of ``tests/hostile_helpers.py`` (a house
drawing, noise, 1×1, FIFO, 0-byte, truncated, 16-bit/RGBA/CMYK faces, a bomb), random
bytes (some behind a PNG or JPEG signature), random valid images without faces (noise,
flat colours, gradients, shapes, at random sizes and formats), over-long texts and
existing output folders — and feeds each to one entry point: ``facefit generate``
(``--sketch``, ``--lq``, ``--reference`` or ``--text``), ``gallery search`` or
``gallery add``. About one case in ten passes ``--allow-no-face``.

Every run goes through the real CLI in-process (click's runner) with a timeout, on
tiny settings: the weight-free ``tiny-face`` encoder and a tiny random generator
(1 round, 1 candidate, 2 steps) with YuNet's face checks, and a 3-identity gallery.

Outcomes: ``refused`` (exit 2, the message names the input), ``accepted`` (exit 0
from evidence with a face found), ``accepted-flagged`` (exit 0, used as given with
``--allow-no-face``, flagged on the console and ``result.json``), ``listed`` (``gallery
add``: skipped and listed, exit 2). Failures of the target: ``traceback``, ``hang``,
``unflagged-ranking`` (exit 0 with a ranking from evidence that has no face, not
allowed or not flagged), ``unnamed-refusal`` (refused without naming the input),
``other-exit``. A face YuNet reports in a faceless random image is counted apart
(``detector-false-positive``): that is the detector's call, and it is recorded with
its score.

    nice -n 19 .venv/bin/python benchmarks/fuzz_evidence.py --n 500 \\
        --out benchmarks/results/fuzz_evidence.json
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import io
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.hostile_helpers import KINDS, LONG_TEXT, write_kind  # noqa: E402

FACELESS = {"house", "noise", "one-pixel", "fifo", "empty", "truncated", "bomb"}
TIMEOUT_S = 60.0
ENTRY_POINTS = ("sketch", "lq", "reference", "text", "search", "add")


def random_bytes(path: Path, rng: np.random.Generator) -> Path:
    """Random bytes, sometimes behind an image signature so a decoder starts on them."""
    body = rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8).tobytes()
    head = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"GIF89a"][rng.integers(5)]
    path.write_bytes(head + body)
    return path


def random_image(path: Path, rng: np.random.Generator) -> Path:
    """A valid image without a face: noise, a flat colour, a gradient or shapes."""
    import cv2

    h, w = (int(v) for v in rng.integers(1, 320, 2))
    style = rng.integers(4)
    if style == 0:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif style == 1:
        image = np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)
    elif style == 2:
        ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
        image = np.broadcast_to(ramp, (h, w, 3)).astype(np.uint8).copy()
    else:
        image = np.full((h, w, 3), 255, np.uint8)
        for _ in range(int(rng.integers(1, 12))):
            p, q = (tuple(int(v) for v in rng.integers(0, max(h, w), 2)) for _ in range(2))
            cv2.rectangle(image, p, q, tuple(int(c) for c in rng.integers(0, 256, 3)), 2)
    fmt = ["PNG", "JPEG", "BMP", "TIFF", "WEBP"][rng.integers(5)]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    path.write_bytes(buffer.getvalue())
    return path


def make_case(i: int, folder: Path, rng: np.random.Generator) -> dict:
    """One hostile input and the entry point it goes to."""
    entry = ENTRY_POINTS[int(rng.integers(len(ENTRY_POINTS)))]
    roll = rng.random()
    stem = f"case{i:04d}"
    if entry == "text":
        kind = "long-text" if roll < 0.7 else "existing-out"
        return {"i": i, "kind": kind, "entry": entry, "path": None, "faceless": True}
    if roll < 0.45:
        kind = str(rng.choice(list(KINDS)))
        path = write_kind(folder, kind, seed=int(rng.integers(24)), stem=stem)
        faceless = kind in FACELESS
    elif roll < 0.7:
        kind, faceless = "random-bytes", True
        path = random_bytes(folder / f"{stem}{rng.choice(['.png', '.jpg', '.bmp'])}", rng)
    else:
        kind, faceless = "random-image", True
        path = random_image(folder / f"{stem}.img", rng)
    allow = entry in ("sketch", "lq", "reference") and rng.random() < 0.1
    return {"i": i, "kind": kind, "entry": entry, "path": path, "faceless": faceless,
            "allow": allow}  # fmt: skip


def invoke(registry, args: list) -> tuple[object | None, float]:
    from click.testing import CliRunner

    from facefit.cli import main

    box: dict = {}

    def target():
        box["r"] = CliRunner().invoke(main, [str(a) for a in args], obj={"registry": registry})

    start = time.perf_counter()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(TIMEOUT_S)
    return box.get("r"), time.perf_counter() - start


class Setup:
    """The toy pipeline and galleries every case runs against."""

    def __init__(self, root: Path) -> None:
        from facefit import Registry
        from tests.pipeline_helpers import save_model, toy_gallery, toy_registry
        from tests.plugins.gallery_toys import Toys

        self.root = root
        self.pipeline_registry = toy_registry()
        toy_gallery(self.pipeline_registry).save(root / "gallery")
        (root / "pipeline.toml").write_text(
            f'[pipeline]\nmodel = "{save_model(root / "model")}"\nrounds = 1\ncandidates = 1\n'
            'steps = 2\n\n[face_detector]\nplugin = "yunet"\n\n[face_encoder]\nplugin = "tiny-face"\n'
        )
        self.gallery_registry = Registry.load(
            allow=["yunet", "retrievers", "scann", "milvus"], plugins=[("toys", Toys())]
        )
        photos = root / "photos"
        for n in range(3):
            write_kind(photos / f"person{n}", "face", seed=n)
        result, _ = invoke(self.gallery_registry, ["gallery", "build", photos, "--out",
                           root / "mugs", "--encoder", "pattern", "--detector", "yunet", "--no-progress"])  # fmt: skip
        assert result is not None and result.exit_code == 0, result and result.output
        self.earlier = root / "earlier"
        first, _ = invoke(self.pipeline_registry, [*self.generate_args(self.earlier), "--reference", write_kind(root, "face", seed=5)])  # fmt: skip
        assert first is not None and first.exit_code == 0, first and first.output

    def generate_args(self, out: Path) -> list:
        return ["generate", "--config", self.root / "pipeline.toml", "-g", self.root / "gallery",
                "--out", out, "--no-progress"]  # fmt: skip

    def run(self, case: dict, scratch: Path) -> tuple[object | None, float, Path | None]:
        entry, path = case["entry"], case["path"]
        if entry == "search":
            args = [
                "gallery",
                "search",
                "-g",
                self.root / "mugs",
                path,
                "-k",
                "3",
                "--detector",
                "yunet",
            ]
            return (*invoke(self.gallery_registry, args), None)
        if entry == "add":
            gallery = scratch / "mugs"
            shutil.copytree(self.root / "mugs", gallery)
            args = ["gallery", "add", "-g", gallery, path, "--identity", "probe", "--detector",
                    "yunet", "--no-progress"]  # fmt: skip
            return (*invoke(self.gallery_registry, args), None)
        out = scratch / "run"
        if entry == "text":
            if case["kind"] == "existing-out":
                out = self.earlier
                args = [*self.generate_args(out), "--text", "a man with a beard"]
            else:
                args = [*self.generate_args(out), "--text", LONG_TEXT]
        else:
            args = [*self.generate_args(out), f"--{entry}", path]
            if case["allow"]:
                args += ["--allow-no-face", entry]
        return (*invoke(self.pipeline_registry, args), out)


def classify(case: dict, result, out: Path | None, setup: Setup) -> tuple[str, dict]:
    """The outcome name and details worth keeping."""
    if result is None:
        return "hang", {}
    text = result.output
    if "Traceback" in text or (
        result.exception is not None and not isinstance(result.exception, SystemExit)
    ):
        return "traceback", {"error": repr(result.exception)[:300]}
    named = (
        str(case["path"])
        if case["path"] is not None
        else ("--text" if case["kind"] == "long-text" else str(out))
    )
    if case["entry"] == "add":
        if result.exit_code == 0:
            return ("accepted" if not case["faceless"] else "detector-false-positive"), {}
        ok = (
            result.exit_code == 2
            and f"skipped {case['path']}: " in text
            and "nothing was added" in text
        )
        return ("listed" if ok else "unnamed-refusal"), {"message": text[-300:]}
    if result.exit_code == 2:
        return ("refused" if named in text else "unnamed-refusal"), {"message": text.strip()[-300:]}
    if result.exit_code != 0:
        return "other-exit", {"exit": result.exit_code, "message": text[-300:]}
    if case["entry"] == "search":
        return ("accepted" if not case["faceless"] else "detector-false-positive"), {}
    data = json.loads((out / "result.json").read_text())
    flagged = [e for e in data.get("evidence", []) if e["flagged"]]
    if flagged:
        visible = "CAUTION" in text and data["confidence"] == "low"
        return ("accepted-flagged" if case.get("allow") and visible else "unflagged-ranking"), {}
    if case["faceless"] or case["kind"] == "existing-out":
        scores = [e["detector_score"] for e in data.get("evidence", [])]
        # a face the detector reports (with its score) is its call; used without one, unflagged, is ours
        found = bool(scores) and all(score is not None for score in scores)
        kind = "detector-false-positive" if found else "unflagged-ranking"
        return kind, {"detector_scores": scores}
    return "accepted", {}


def machine() -> str:
    cores = len(os.sched_getaffinity(0))
    return f"{cores}-core CPU ({platform.machine()}, {platform.system()}), Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/fuzz_evidence.json")
    parser.add_argument(
        "--note", default="", help="Recorded with the results (e.g. what else ran)."
    )
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)  # the CLI's own output is what is judged
    rng = np.random.default_rng(args.seed)
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    problems, slowest = [], 0.0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="facefit-fuzz-") as tmp:
        root = Path(tmp)
        setup = Setup(root / "setup")
        for i in range(args.n):
            case_dir = root / f"c{i}"
            case_dir.mkdir()
            case = make_case(i, case_dir, rng)
            result, seconds, out = setup.run(case, case_dir)
            outcome, details = classify(case, result, out, setup)
            slowest = max(slowest, seconds)
            counts[f"{case['entry']}:{case['kind']}"][outcome] += 1
            if outcome in (
                "traceback",
                "hang",
                "unflagged-ranking",
                "unnamed-refusal",
                "other-exit",
                "detector-false-positive",
            ):
                problems.append({"case": i, "entry": case["entry"], "kind": case["kind"],
                                 "outcome": outcome, **details})  # fmt: skip
            if outcome == "hang":
                break  # the hung thread holds the runner; stop and report
            shutil.rmtree(case_dir, ignore_errors=True)
            if (i + 1) % 50 == 0:
                print(f"{i + 1}/{args.n} cases, {time.perf_counter() - start:.0f} s", flush=True)
    totals = collections.Counter()
    for outcomes in counts.values():
        totals.update(outcomes)
    failures = sum(
        totals[k]
        for k in ("traceback", "hang", "unflagged-ranking", "unnamed-refusal", "other-exit")
    )
    report = {
        "command": shlex.join(["nice", "-n", "19", ".venv/bin/python", *sys.argv]),
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "note": args.note,
        "cases": sum(totals.values()),
        "seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1),
        "slowest_case_s": round(slowest, 2),
        "timeout_s": TIMEOUT_S,
        "totals": dict(sorted(totals.items())),
        "target_failures": failures,
        "by_entry_and_kind": {k: dict(sorted(v.items())) for k, v in sorted(counts.items())},
        "problems": problems,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(
        json.dumps(
            {k: report[k] for k in ("cases", "totals", "target_failures", "seconds")}, indent=2
        )
    )


def markdown(report: dict) -> str:
    lines = [
        "# Fuzzing the evidence entry points (`benchmarks/fuzz_evidence.py`)",
        "",
        f"Date: {report['date']} · Machine: {report['machine']} · {report['cases']} cases, "
        f"seed {report['seed']}, {report['seconds']} s (slowest case {report['slowest_case_s']} s; "
        f"timeout {report['timeout_s']:g} s).",
        "",
        f"Command: `{report['command']}`",
        "",
    ]
    if report["note"]:
        lines += [report["note"], ""]
    lines += [
        f"**Failures of the target** (traceback, hang, exit 0 with an unflagged ranking from "
        f"evidence without a face, a refusal not naming the input, another exit code): "
        f"**{report['target_failures']}**.",
        "",
        "| outcome | cases |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in report["totals"].items()],
        "",
        "By entry point and input kind:",
        "",
        "| entry point : kind | outcomes |",
        "|---|---|",
        *[
            f"| {k} | {', '.join(f'{o} {n}' for o, n in v.items())} |"
            for k, v in report["by_entry_and_kind"].items()
        ],
        "",
    ]
    if report["problems"]:
        lines += ["Cases worth a look (details in the JSON):", ""]
        lines += [
            f"- case {p['case']}: {p['entry']} {p['kind']} → {p['outcome']}"
            for p in report["problems"][:30]
        ]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
