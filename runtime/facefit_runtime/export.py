"""ONNX export of a denoiser, with named inputs, a dynamic batch and the onnx checker.

The exported graph takes ``sample (B, C, H, W)``, ``timestep (B,)`` and
``encoder_hidden_states (B, N, D)``, all float32, and returns ``prediction (B,
C_out, H, W)`` float32 — whatever the precision inside. For ``fp16`` the weights
and the arithmetic are half precision and casts sit at the inputs and the
output: precision is part of the graph, which is what TensorRT's strongly typed
networks (the only kind in TensorRT 11) and ONNX Runtime's CUDA provider expect.

The TorchScript-based exporter (``dynamo=False``) is used: it needs no extra
package (the dynamo exporter needs onnxscript) and is the path NVIDIA's diffusion
demo takes for diffusers UNets. Graphs over 2 GB (the SD1.5 UNet in fp32) are
written with external weights beside ``model.onnx``.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from facefit.errors import InputError
from facefit_runtime.contract import ExportContract

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
PRECISIONS = ("fp32", "fp16")
CONTRACT_FILE = "contract.json"


class DenoiserAdapter(torch.nn.Module):
    """Gives any denoiser the plain call ``(sample, timestep, tokens) -> tensor``.

    diffusers' UNets return a ``UNet2DConditionOutput`` (or a tuple with
    ``return_dict=False``) and take the timestep as a scalar or a vector; other
    modules return a tensor. This adapter unwraps the output, makes the timestep a
    ``(B,)`` float vector, and optionally runs the model in another dtype while
    keeping float32 at the boundary.
    """

    def __init__(self, model: Any, compute_dtype: Any = None) -> None:
        super().__init__()
        self.model = model
        self.compute_dtype = compute_dtype
        try:
            params = inspect.signature(model.forward).parameters
        except (TypeError, ValueError, AttributeError):
            params = {}
        self._return_dict_kw = "return_dict" in params

    def forward(self, sample, timestep, encoder_hidden_states):
        out_dtype = sample.dtype
        if self.compute_dtype is not None:
            sample = sample.to(self.compute_dtype)
            encoder_hidden_states = encoder_hidden_states.to(self.compute_dtype)
        kwargs = {"return_dict": False} if self._return_dict_kw else {}
        out = self.model(sample, timestep, encoder_hidden_states=encoder_hidden_states, **kwargs)
        out = unwrap_prediction(out)
        return out.to(out_dtype)


def unwrap_prediction(out: Any) -> Any:
    """The tensor inside a model output (``.sample``, a 1-tuple, or the tensor itself)."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    return getattr(out, "sample", out)


def batch_timestep(timestep: Any, batch: int, device: Any) -> Any:
    """A ``(batch,)`` float32 tensor from a scalar, a 0-d, 1-element or ``(batch,)`` timestep."""
    t = torch.as_tensor(timestep, device=device)
    t = t.to(torch.float32).reshape(-1)
    if t.numel() == 1 and batch != 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise InputError(f"timestep has {t.numel()} values for a batch of {batch}")
    return t.contiguous()


def export_onnx(
    model: Any,
    path: str | Path,
    contract: ExportContract,
    *,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    device: Any = None,
    check: bool = True,
) -> Path:
    """Export ``model`` to ``path`` following ``contract``; returns ``path``.

    The model is not changed: for ``fp16`` a half-precision copy is exported.
    ``device`` is where tracing runs (default: the model's device). A
    ``contract.json`` beside the file records names, shapes and precision, so an
    engine can later be built from the file alone.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    device = device or _module_device(model)
    export_model = model
    if precision == "fp16":
        export_model = copy.deepcopy(model).to(device=device, dtype=torch.float16)
    adapter = DenoiserAdapter(export_model, torch.float16 if precision == "fp16" else None).eval()
    inputs = contract.sample_inputs(contract.profile.batch[1], device=device)
    started = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        # data-dependent Python branches in diffusers trace as constants; with only
        # the batch dynamic and static H/W they do not change the graph's meaning.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx.*")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            adapter,
            inputs,
            str(path),
            dynamo=False,
            input_names=list(contract.input_names),
            output_names=list(contract.output_names),
            dynamic_axes=contract.dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
        )
    log.info(
        "exported %s to %s in %.1f s", type(model).__name__, path, time.perf_counter() - started
    )
    if check:
        check_onnx(path, contract)
    write_contract(path.parent / CONTRACT_FILE, contract, precision=precision, opset=opset)
    return path


def check_onnx(path: str | Path, contract: ExportContract) -> None:
    """Run the onnx checker and check the graph's input and output names against the contract."""
    import onnx

    path = Path(path)
    onnx.checker.check_model(str(path))  # by path: works for graphs with external weights
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    inputs = tuple(i.name for i in graph.input if i.name not in initializers)
    outputs = tuple(o.name for o in graph.output)
    if inputs != contract.input_names or outputs != contract.output_names:
        raise RuntimeError(
            f"{path}: exported graph has inputs {inputs} and outputs {outputs}, "
            f"expected {contract.input_names} and {contract.output_names}"
        )


def write_contract(path: Path, contract: ExportContract, *, precision: str, opset: int) -> None:
    from dataclasses import asdict

    record = {
        "input_names": list(contract.input_names),
        "output_names": list(contract.output_names),
        "dynamic_axes": {
            k: {str(a): n for a, n in v.items()} for k, v in contract.dynamic_axes.items()
        },
        "profile": asdict(contract.profile),
        "min_opt_max": {k: [list(s) for s in v] for k, v in contract.profile.min_opt_max().items()},
        "precision": precision,
        "opset": opset,
    }
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")


def read_contract(path: str | Path) -> tuple[ExportContract, str]:
    """The contract and precision recorded beside an exported ``model.onnx``."""
    from facefit_runtime.contract import ShapeProfile

    path = Path(path)
    record_path = path if path.suffix == ".json" else path.parent / CONTRACT_FILE
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{record_path} not found: export the model with facefit_runtime.export "
            "(or `facefit runtime build`), which writes it beside model.onnx"
        ) from None
    profile = record["profile"]
    profile["batch"] = tuple(profile["batch"])
    contract = ExportContract(
        ShapeProfile(**profile),
        tuple(record["input_names"]),
        tuple(record["output_names"]),
    )
    return contract, record["precision"]


def _module_device(model: Any) -> Any:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


EXPORT_FORMAT = 1
"""Bumped when :class:`DenoiserAdapter` or the export settings change what a graph computes."""


def onnx_cache_key(model: Any, contract: ExportContract, precision: str, opset: int) -> Any:
    """The cache key of one export: weights, precision, shapes and exporter versions."""
    from facefit_runtime.cache import CacheKey, weights_hash

    return CacheKey(
        kind="onnx",
        weights=weights_hash(model),
        precision=precision,
        profile=contract.profile.key,
        toolchain=f"torch {torch.__version__} opset {opset} export {EXPORT_FORMAT}",
    )


def export_cached(
    model: Any,
    contract: ExportContract,
    *,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    cache: Any = None,
    device: Any = None,
) -> Path:
    """``model.onnx`` for this model, contract and precision: from the cache, else exported.

    Returns the path of the cached file. Exports only when no entry has the same
    key (same weights, precision, shape profile, torch version and opset).
    """
    from facefit_runtime.cache import EngineCache

    cache = cache if isinstance(cache, EngineCache) else EngineCache(cache)
    key = onnx_cache_key(model, contract, precision, opset)
    entry = cache.lookup(key)
    if entry is not None:
        log.info("ONNX export found in cache: %s", entry.path)
        return entry.file("model.onnx")
    with cache.writing(key) as folder:
        export_onnx(
            model, folder / "model.onnx", contract, precision=precision, opset=opset, device=device
        )
    return cache.path_for(key) / "model.onnx"
