"""Denoiser backend ``tensorrt``: a TensorRT engine built from the ONNX export.

Life cycle, as in NVIDIA's ``demo/Diffusion``, with each step explicit in
:class:`Engine`: **build** (parse the ONNX graph, one optimization profile with the
contract's min/opt/max batch, a timing cache, serialize) → **load** (deserialize)
→ **activate** (execution context) → **allocate** (device buffers for a batch size)
→ **infer** (enqueue on PyTorch's stream, or replay a CUDA graph captured on the
first call at that batch size) → **unload**. The denoising loop stays in Python;
only the UNet call is swapped.

Precision is part of the ONNX graph (``fp16`` exports half weights with float32
inputs and output) and the network is built strongly typed: the only mode
TensorRT 11 has, and opt-in from 10.x. Works with TensorRT ≥ 10 (``tensorrt``)
and TensorRT for RTX (``tensorrt_rtx``).

Engines are cached on disk (:mod:`facefit_runtime.cache`) under a key made of the
weights hash, precision, shape profile, TensorRT flavour and version, and GPU name
and compute capability: change any and the engine is rebuilt. When TensorRT is not
installed, or no CUDA device is visible, creating the backend raises
:class:`~facefit.errors.BackendUnavailableError` naming the fallback; no engine is
ever faked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any, ClassVar

from facefit import hookimpl
from facefit.errors import BackendUnavailableError, InputError
from facefit.files import read_into
from facefit.interfaces import DenoiserBackend

log = logging.getLogger(__name__)

FALLBACK = (
    "use the 'onnxruntime' backend (CUDA execution provider with onnxruntime-gpu, or the CPU) "
    "or the 'compiled' backend (torch.compile with CUDA graphs) instead"
)
PRECISIONS = ("fp16", "fp32")
ENGINE_FILE = "engine.plan"


def import_tensorrt() -> tuple[Any, str]:
    """``(module, flavour)`` for TensorRT or TensorRT for RTX; raises naming the fallback."""
    errors = []
    for module_name, flavour in (("tensorrt", "tensorrt"), ("tensorrt_rtx", "tensorrt-rtx")):
        try:
            module = __import__(module_name)
        except Exception as exc:  # the PyPI stub raises more than ImportError
            errors.append(f"{module_name}: {type(exc).__name__}: {exc}")
            continue
        if not hasattr(module, "Builder"):
            errors.append(f"{module_name}: a stub without the TensorRT API")
            continue
        return module, flavour
    raise BackendUnavailableError(
        "denoiser backend 'tensorrt' unavailable: TensorRT is not installed "
        f"({'; '.join(errors)}). Install TensorRT >= 10 for your CUDA version "
        f"(e.g. pip install tensorrt-cu12) on a machine with an NVIDIA GPU, or {FALLBACK}"
    )


def available() -> tuple[bool, str]:
    """Whether the TensorRT backend can run here, and why not."""
    try:
        trt, flavour = import_tensorrt()
    except BackendUnavailableError as exc:
        return False, str(exc).split(": ", 1)[1]
    import torch

    if not torch.cuda.is_available():
        return False, f"{flavour} {trt.__version__} is installed but torch sees no CUDA device"
    return True, f"{flavour} {trt.__version__} on {gpu_descriptor(0)}"


def gpu_descriptor(index: int = 0) -> str:
    """``"<GPU name> sm_<major><minor>"``: what an engine is tuned for."""
    import torch

    major, minor = torch.cuda.get_device_capability(index)
    return f"{torch.cuda.get_device_name(index)} sm_{major}{minor}"


def file_hash(onnx_path: Path) -> str:
    """SHA-256 of an ONNX file and any external weight files beside it."""
    digest = hashlib.sha256()
    for path in sorted(onnx_path.parent.iterdir()):
        if path.is_file() and path.name not in ("key.json", "contract.json"):
            digest.update(path.name.encode())
            with path.open("rb") as f:
                read_into(digest, f, 1 << 24)
    return digest.hexdigest()


def engine_key(
    *,
    weights: str,
    precision: str,
    profile: Any,
    toolchain: str,
    device: str,
    optimization_level: int = 3,
) -> Any:
    """The cache key of an engine. Any change in one argument gives a different key."""
    from facefit_runtime.cache import CacheKey

    return CacheKey(
        kind="tensorrt",
        weights=weights,
        precision=precision,
        profile=profile.key,
        toolchain=toolchain,
        device=device,
        options=f"strongly-typed opt-level {optimization_level}",
    )


def profile_shapes(contract: Any) -> dict[str, tuple[tuple[int, ...], ...]]:
    """``{input: (min, opt, max)}`` shapes of the one optimization profile built."""
    return contract.profile.min_opt_max()


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int32: torch.int32,
        trt.int64: torch.int64,
        trt.bool: torch.bool,
    }
    if hasattr(trt, "bfloat16"):
        table[trt.bfloat16] = torch.bfloat16
    return table[dtype]


def _make_logger(trt: Any) -> Any:
    levels = {
        trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL,
        trt.ILogger.Severity.ERROR: logging.ERROR,
        trt.ILogger.Severity.WARNING: logging.WARNING,
        trt.ILogger.Severity.INFO: logging.DEBUG,
        trt.ILogger.Severity.VERBOSE: logging.DEBUG,
    }

    class _Logger(trt.ILogger):
        """Routes TensorRT's messages to the ``facefit_runtime.tensorrt`` logger."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            log.log(levels.get(severity, logging.INFO), "TensorRT: %s", msg)

    return _Logger()


def _make_progress(trt: Any) -> Any | None:
    if not hasattr(trt, "IProgressMonitor"):
        return None
    from tqdm.auto import tqdm

    class _Progress(trt.IProgressMonitor):
        """One progress bar per top-level build phase."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._bars: dict[str, Any] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                self._bars[phase_name] = tqdm(
                    total=num_steps, desc=f"TensorRT {phase_name}", leave=False
                )

        def step_complete(self, phase_name, step):
            bar = self._bars.get(phase_name)
            if bar is not None:
                bar.n = step + 1
                bar.refresh()
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            bar = self._bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return _Progress()


class Engine:
    """One TensorRT engine and its explicit life cycle (see the module docstring)."""

    def __init__(self, trt: Any, plan_path: str | Path, device: Any = "cuda") -> None:
        import torch

        self.trt = trt
        self.plan_path = Path(plan_path)
        self.device = torch.device(device)
        self.engine = None
        self.context = None
        self._logger = _make_logger(trt)
        self._runtime = None
        self._buffers: dict[int, dict[str, Any]] = {}
        self._graphs: dict[int, Any] = {}
        self._bound_batch: int | None = None

    # -- build ---------------------------------------------------------------------------------

    @staticmethod
    def build(
        trt: Any,
        onnx_path: Path,
        contract: Any,
        *,
        timing_cache: Path | None = None,
        optimization_level: int = 3,
        workspace_bytes: int | None = None,
        progress: bool = True,
    ) -> bytes:
        """Parse ``onnx_path`` and build a serialized engine for ``contract``'s profile."""
        logger = _make_logger(trt)
        builder = trt.Builder(logger)
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise RuntimeError(f"TensorRT could not parse {onnx_path}: {'; '.join(errors)}")
        config = builder.create_builder_config()
        if workspace_bytes:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
        if hasattr(config, "builder_optimization_level"):
            config.builder_optimization_level = optimization_level
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile_shapes(contract).items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
        cache = None
        if timing_cache is not None and hasattr(config, "create_timing_cache"):
            data = timing_cache.read_bytes() if timing_cache.is_file() else b""
            cache = config.create_timing_cache(data)
            config.set_timing_cache(cache, ignore_mismatch=False)
        monitor = _make_progress(trt) if progress else None
        if monitor is not None:
            config.progress_monitor = monitor
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError(
                f"TensorRT failed to build an engine from {onnx_path}; run with -vv for its log"
            )
        if cache is not None:
            from facefit.files import atomic_write_bytes

            timing_cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
        return bytes(plan)

    # -- load / activate / allocate / infer / unload ---------------------------------------------

    def load(self) -> None:
        """Deserialize the engine from its plan file."""
        self._runtime = self.trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.plan_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(
                f"TensorRT could not load {self.plan_path} (built by another version or for "
                "another GPU?); remove it with `facefit runtime cache --clear` to rebuild"
            )

    def activate(self) -> None:
        """Create the execution context (it owns the activation memory)."""
        self.context = self.engine.create_execution_context()

    def io_names(self) -> tuple[list[str], list[str]]:
        trt, engine = self.trt, self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        return inputs, [n for n in names if n not in inputs]

    def allocate(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
        """Device buffers for one set of input shapes (outputs sized by the engine)."""
        import torch

        batch = shapes[next(iter(shapes))][0]
        if batch in self._buffers:
            return self._buffers[batch]
        inputs, outputs = self.io_names()
        buffers = {}
        for name in inputs:
            self.context.set_input_shape(name, shapes[name])
            dtype = _torch_dtype(self.trt, self.engine.get_tensor_dtype(name))
            buffers[name] = torch.empty(shapes[name], dtype=dtype, device=self.device)
        for name in outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = _torch_dtype(self.trt, self.engine.get_tensor_dtype(name))
            buffers[name] = torch.empty(shape, dtype=dtype, device=self.device)
        self._buffers[batch] = buffers
        self._bound_batch = None
        return buffers

    def _bind(self, batch: int) -> None:
        if self._bound_batch == batch:
            return
        inputs, _ = self.io_names()
        for name, tensor in self._buffers[batch].items():
            if name in inputs:
                self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        self._bound_batch = batch

    def infer(self, feed: dict[str, Any], *, cuda_graph: bool = True) -> dict[str, Any]:
        """Copy ``feed`` into the buffers, run, and return the (reused) output buffers."""
        import torch

        shapes = {name: tuple(t.shape) for name, t in feed.items()}
        buffers = self.allocate(shapes)
        batch = next(iter(shapes.values()))[0]
        for name, tensor in feed.items():
            buffers[name].copy_(tensor)
        self._bind(batch)
        stream = torch.cuda.current_stream(self.device)
        if not cuda_graph:
            self._enqueue(stream)
        elif batch in self._graphs:
            self._graphs[batch].replay()
        else:
            self._graphs[batch] = self._capture(stream)  # its warm-up run computed this call
        return {name: t for name, t in buffers.items() if name not in feed}

    def _enqueue(self, stream: Any) -> None:
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed; run with -vv for its log")

    def _capture(self, stream: Any) -> Any:
        import torch

        # TensorRT needs one enqueue after shapes change before a capture; it also
        # computes this call's output, since a capture records work without running it
        self._enqueue(stream)
        stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=torch.cuda.Stream(self.device)):
            self._enqueue(torch.cuda.current_stream(self.device))
        return graph

    def unload(self) -> None:
        """Free graphs, buffers, the context and the engine. Safe to call twice."""
        self._graphs.clear()
        self._buffers.clear()
        self._bound_batch = None
        self.context = None
        self.engine = None
        self._runtime = None


class TensorRTBackend(DenoiserBackend):
    """TensorRT engine (fp16 by default) with a disk cache and CUDA-graph replay.

    Options: ``engine_path`` a prebuilt plan, or ``onnx_path`` an export with its
    ``contract.json``, or the ``model`` itself (exported and built on first use);
    ``batch`` the ``(min, opt, max)`` batch range; ``precision`` ``fp16``/``fp32``;
    ``cuda_graph``; ``optimization_level`` (builder, 0–5); ``workspace_gb``;
    ``cache_dir``; ``rebuild`` ignores a cached engine.
    """

    host_options = ("model",)
    name: ClassVar[str] = "tensorrt"

    def __init__(
        self,
        model: Any = None,
        *,
        onnx_path: str | os.PathLike[str] | None = None,
        contract: Any = None,
        num_tokens: int | None = None,
        batch: tuple[int, int, int] = (1, 2, 8),
        precision: str = "fp16",
        device: str = "cuda",
        cuda_graph: bool = True,
        optimization_level: int = 3,
        workspace_gb: float | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        rebuild: bool = False,
    ) -> None:
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        trt, flavour = import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"denoiser backend 'tensorrt': {flavour} is installed but torch sees no CUDA device; "
                + FALLBACK
            )
        from facefit_runtime.cache import EngineCache

        self.device = torch.device(device)
        self.cuda_graph = cuda_graph
        self.precision = precision
        self.cache = EngineCache(cache_dir)
        onnx_file, self.contract, weights = self._onnx(
            model, onnx_path, contract, num_tokens, batch
        )
        toolchain = f"{flavour} {trt.__version__}"
        gpu = gpu_descriptor(self.device.index or 0)
        self.key = engine_key(
            weights=weights,
            precision=precision,
            profile=self.contract.profile,
            toolchain=toolchain,
            device=gpu,
            optimization_level=optimization_level,
        )
        entry = None if rebuild else self.cache.lookup(self.key)
        self.build_seconds = 0.0
        if entry is None:
            started = time.perf_counter()
            log.info(
                "building a TensorRT engine for %s (%s, %s)",
                gpu,
                precision,
                self.contract.profile.key,
            )
            plan = Engine.build(
                trt,
                onnx_file,
                self.contract,
                timing_cache=self.cache.timing_cache_path(toolchain, gpu),
                optimization_level=optimization_level,
                workspace_bytes=int(workspace_gb * (1 << 30)) if workspace_gb else None,
            )
            entry = self.cache.store(self.key, {ENGINE_FILE: plan})
            self.build_seconds = time.perf_counter() - started
            log.info("engine built in %.1f s: %s", self.build_seconds, entry.path)
        self.engine = Engine(trt, entry.file(ENGINE_FILE), self.device)
        self.engine.load()
        self.engine.activate()
        self._input_names, self._output_names = self.engine.io_names()

    def _onnx(self, model, onnx_path, contract, num_tokens, batch):
        from facefit_runtime.contract import contract_for
        from facefit_runtime.export import export_cached, read_contract

        if onnx_path is not None:
            path = Path(onnx_path)
            recorded, recorded_precision = read_contract(path)
            if recorded_precision != self.precision:
                raise InputError(
                    f"{path} was exported in {recorded_precision}, not {self.precision}: "
                    f"export again with precision={self.precision!r} or pass precision={recorded_precision!r}"
                )
            return path, contract or recorded, file_hash(path)
        if model is None:
            raise InputError("denoiser backend 'tensorrt' needs a model or an onnx_path")
        model = getattr(model, "denoiser", model)  # a whole FaceGenerator: its per-step module
        from facefit_runtime.cache import weights_hash

        contract = contract or contract_for(model, num_tokens=num_tokens, batch=tuple(batch))
        path = export_cached(model, contract, precision=self.precision, cache=self.cache)
        return path, contract, weights_hash(model)

    def __call__(self, sample, timestep, encoder_hidden_states):
        import torch

        from facefit_runtime.export import batch_timestep

        batch = sample.shape[0]
        if not self.contract.profile.accepts(batch):
            raise InputError(
                f"batch {batch} is outside the engine's profile {self.contract.profile.batch}; "
                "build with a wider batch range"
            )
        feed = {
            "sample": sample.to(self.device, torch.float32),
            "timestep": batch_timestep(timestep, batch, self.device),
            "encoder_hidden_states": encoder_hidden_states.to(self.device, torch.float32),
        }
        out = self.engine.infer(feed, cuda_graph=self.cuda_graph)[self._output_names[0]]
        # the buffer is reused by the next call: hand out a copy
        return out.to(sample.device, sample.dtype, copy=True)

    def close(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.unload()
            self.engine = None


@hookimpl
def register_denoiser_backends(register) -> None:
    register(TensorRTBackend)
