"""The engine cache: exported ONNX graphs and built TensorRT engines, on disk, by key.

Building a TensorRT engine for a UNet takes minutes; exporting it to ONNX, tens of
seconds. Both are kept here and reused while nothing they depend on changed. An
entry's key (:class:`CacheKey`) holds everything that makes a built artefact
valid: the weights (a hash of every tensor and the model config), the precision,
the shape profile, the toolchain that built it (TensorRT or torch/opset version)
and the device it was tuned for (GPU name and compute capability). Change any
one and the key — and so the entry — is different, which is how a stale engine is
never loaded.

Layout, under :func:`default_root` (``$FACEFIT_ENGINE_CACHE``, else
``$FACEFIT_HOME/engines``, else ``~/.cache/facefit/engines``)::

    onnx/<profile>-<precision>-<digest>/model.onnx (+ external weights), key.json
    tensorrt/<profile>-<precision>-<digest>/engine.plan, key.json
    timing/<toolchain>-<device>.cache       TensorRT timing cache, shared by models

An entry is written into a temporary folder and renamed into place, with
``key.json`` written last, so a crash or a concurrent build never leaves a
half-written entry that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facefit.files import atomic_write_bytes

log = logging.getLogger(__name__)

ENV_ENGINE_CACHE = "FACEFIT_ENGINE_CACHE"
KEY_FILE = "key.json"
SCHEMA = 1
"""Bumped when the layout or the meaning of a key field changes: old entries are then ignored."""


def default_root() -> Path:
    """Where engines are cached unless a folder is given."""
    explicit = os.environ.get(ENV_ENGINE_CACHE)
    if explicit:
        return Path(explicit).expanduser()
    from facefit.weights import cache_dir  # $FACEFIT_HOME/models or ~/.cache/facefit/models

    return cache_dir().parent / "engines"


def weights_hash(model: Any) -> str:
    """SHA-256 of a module's config and every parameter and buffer, by name.

    Values are hashed in their stored dtype, so a model cast to fp16 hashes
    differently from its fp32 original (their engines differ too). Takes about
    a second per GB.
    """
    import torch

    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None:
        items = dict(config) if isinstance(config, dict) else vars(config)
        text = json.dumps(
            {k: v for k, v in sorted(items.items()) if not k.startswith("_")},
            sort_keys=True,
            default=str,
        )
        digest.update(text.encode())
    digest.update(type(model).__qualname__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        flat = tensor.to("cpu").contiguous().reshape(-1)
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """Everything a cached artefact depends on.

    ``toolchain`` names what built it (``"tensorrt 10.13.0"``, ``"torch 2.13.0
    onnx-opset 17"``); ``device`` what it was tuned for (``"NVIDIA H100 80GB HBM3
    sm_90"``, or ``"any"`` for portable ONNX files); ``options`` any other setting
    that changes the result (builder optimization level, CUDA graph capture…).
    """

    kind: str
    weights: str
    precision: str
    profile: str
    toolchain: str
    device: str = "any"
    options: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}

    @property
    def digest(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def dirname(self) -> str:
        return _slug(f"{self.profile}-{self.precision}") + f"-{self.digest}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80]


@dataclass(frozen=True)
class CacheEntry:
    """One complete cached artefact: its folder and the key it was stored under."""

    path: Path
    key: dict[str, Any]
    created: float

    @property
    def kind(self) -> str:
        return str(self.key.get("kind", self.path.parent.name))

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


class EngineCache:
    """A folder of cached ONNX exports and engines; see the module docstring."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def __repr__(self) -> str:
        return f"EngineCache({str(self.root)!r})"

    def path_for(self, key: CacheKey) -> Path:
        return self.root / key.kind / key.dirname

    def lookup(self, key: CacheKey) -> CacheEntry | None:
        """The complete entry stored under ``key``, or None."""
        path = self.path_for(key)
        return _read_entry(path)

    @contextlib.contextmanager
    def writing(self, key: CacheKey) -> Iterator[Path]:
        """Yield an empty temporary folder; on success it becomes the entry for ``key``.

        If the block raises, the temporary folder is removed and nothing is stored.
        If another process stored the same key meanwhile, its entry is kept (both
        were built from the same inputs) and ours is discarded.
        """
        final = self.path_for(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
            _write_json_atomic(tmp / KEY_FILE, {**key.as_dict(), "created": time.time()})
            try:
                os.rename(tmp, final)
            except OSError:
                if _read_entry(final) is None:  # a broken leftover: replace it
                    shutil.rmtree(final, ignore_errors=True)
                    os.rename(tmp, final)
                else:
                    log.info("cache entry %s was stored concurrently; keeping it", final.name)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def store(self, key: CacheKey, files: dict[str, bytes]) -> CacheEntry:
        """Store in-memory files (e.g. a serialized engine) under ``key``."""
        with self.writing(key) as tmp:
            for name, data in files.items():
                (tmp / name).write_bytes(data)
        entry = self.lookup(key)
        assert entry is not None
        return entry

    def entries(self, kind: str | None = None) -> list[CacheEntry]:
        """Complete entries, newest first."""
        kinds = (
            [kind] if kind else sorted(p.name for p in self._dirs(self.root) if p.name != "timing")
        )
        found = []
        for k in kinds:
            for path in self._dirs(self.root / k):
                entry = _read_entry(path)
                if entry is not None:
                    found.append(entry)
        return sorted(found, key=lambda e: e.created, reverse=True)

    def remove(self, entry: CacheEntry) -> None:
        shutil.rmtree(entry.path, ignore_errors=True)

    def clear(self, kind: str | None = None) -> int:
        """Remove every entry (of one kind); returns how many were removed."""
        entries = self.entries(kind)
        for entry in entries:
            self.remove(entry)
        return len(entries)

    # -- TensorRT timing caches: per toolchain and device, shared by every model --------------

    def timing_cache_path(self, toolchain: str, device: str) -> Path:
        return self.root / "timing" / f"{_slug(toolchain)}-{_slug(device)}.cache"

    @staticmethod
    def _dirs(path: Path) -> list[Path]:
        if not path.is_dir():
            return []
        return [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]


def _read_entry(path: Path) -> CacheEntry | None:
    try:
        key = json.loads((path / KEY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if key.get("schema") != SCHEMA:
        return None
    return CacheEntry(path, key, float(key.get("created", 0.0)))


def _write_json_atomic(path: Path, value: dict[str, Any]) -> None:
    atomic_write_bytes(path, json.dumps(value, indent=2, sort_keys=True).encode())
