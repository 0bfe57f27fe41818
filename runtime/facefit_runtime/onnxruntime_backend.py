"""Denoiser backend ``onnxruntime``: the exported graph in ONNX Runtime.

On a CPU this is the fastest backend facefit has: ONNX Runtime fuses the UNet's
small ops (GroupNorm + SiLU, attention, bias adds) and runs convolutions in a
blocked layout, which removes most of eager PyTorch's per-op overhead. On an
NVIDIA GPU the CUDA execution provider runs the same graph (install
``onnxruntime-gpu`` instead of ``onnxruntime``), fed through IO binding so tensors
stay on the GPU, on PyTorch's current CUDA stream.

The graph comes from ``onnx_path`` (with ``contract.json`` beside it, as written by
:func:`facefit_runtime.export.export_onnx`) or is exported from ``model`` into the
engine cache once per weights, precision and shape profile.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, ClassVar

from facefit import hookimpl
from facefit.errors import BackendUnavailableError, InputError
from facefit.interfaces import DenoiserBackend
from facefit_runtime.contract import BATCH_AXIS

log = logging.getLogger(__name__)

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
_CPU_FP32 = (
    "onnxruntime on the CPU runs fp32 only (its CPU kernels for fp16 convolutions are "
    "missing or slow); use precision='fp32'"
)


def available() -> tuple[bool, str]:
    """Whether ONNX Runtime can run here, and which execution providers it has."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return False, f"onnxruntime is not installed ({exc}); pip install onnxruntime"
    providers = [p for p in ort.get_available_providers() if p != "AzureExecutionProvider"]
    return True, f"onnxruntime {ort.__version__}: {', '.join(providers)}"


def cuda_available() -> tuple[bool, str]:
    """Whether the CUDA execution provider and a CUDA device are both present."""
    ok, why = available()
    if not ok:
        return ok, why
    import onnxruntime as ort
    import torch

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return (
            False,
            "CUDA execution provider missing: install onnxruntime-gpu instead of onnxruntime",
        )
    if not torch.cuda.is_available():
        return False, "CUDA execution provider present but torch sees no CUDA device"
    return True, "CUDA execution provider"


def default_threads() -> int:
    """The CPUs this process may use (its affinity mask), not the machine's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def session_options(threads: int | None = None, optimization: str = "all") -> Any:
    """Session options tuned for one denoiser call at a time.

    All graph optimizations (``all`` adds the layout transforms that make CPU
    convolutions fast), one intra-op thread per usable CPU, sequential execution
    (a UNet's graph is a chain: parallel execution only adds scheduling cost),
    memory pattern planning on (shapes repeat from step to step).
    """
    import onnxruntime as ort

    if optimization not in OPTIMIZATION_LEVELS:
        raise InputError(
            f"onnxruntime optimization must be one of {', '.join(OPTIMIZATION_LEVELS)}, got {optimization!r}"
        )
    level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = True
    options.enable_cpu_mem_arena = True
    options.log_severity_level = 3  # errors only; ORT's warnings about fused nodes are noise
    return options


class OnnxRuntimeBackend(DenoiserBackend):
    """ONNX Runtime (CPU, or CUDA with onnxruntime-gpu) on the exported denoiser graph.

    Options: ``device`` ``"cpu"``, ``"cuda"``/``"cuda:N"`` or ``"auto"`` (default:
    where the model is, else the CPU);
    ``threads`` intra-op threads (default: the CPUs this process may use);
    ``optimization`` graph optimization level; ``precision`` ``fp32`` (or ``fp16``
    on CUDA); ``batch`` the ``(min, opt, max)`` batch range when exporting;
    ``cache_dir`` the engine cache; ``static_batch`` one session per batch size
    with the batch fixed (faster; each holds its own copy of the weights: turn it
    off for large models on small machines).
    """

    host_options = ("model",)
    thread_safe = True  # ONNX Runtime sessions take concurrent runs
    name: ClassVar[str] = "onnxruntime"

    def __init__(
        self,
        model: Any = None,
        *,
        onnx_path: str | os.PathLike[str] | None = None,
        contract: Any = None,
        num_tokens: int | None = None,
        batch: tuple[int, int, int] = (1, 2, 8),
        device: str | None = None,
        threads: int | None = None,
        optimization: str = "all",
        precision: str = "fp32",
        cache_dir: str | os.PathLike[str] | None = None,
        static_batch: bool = True,
    ) -> None:
        ok, why = available()
        if not ok:
            raise BackendUnavailableError(
                f"denoiser backend 'onnxruntime' unavailable: {why}; fall back to 'eager'"
            )
        import onnxruntime as ort
        import torch

        if device is None:  # follow the model: the pipeline has already put it on its device
            device = str(_module_device(model)) if model is not None else "cpu"
        self.device = _resolve_device(device)
        if self.device.type == "cuda":
            ok, why = cuda_available()
            if not ok:
                raise BackendUnavailableError(
                    f"denoiser backend 'onnxruntime' on {device}: {why}; "
                    "use device='cpu', or the 'compiled' or 'eager' backend on the GPU"
                )
        if self.device.type == "cpu" and precision != "fp32":
            raise InputError(_CPU_FP32)
        self.onnx_path, self.contract, self.precision = self._graph(
            model, onnx_path, contract, num_tokens, batch, precision, cache_dir
        )
        if self.device.type == "cpu" and self.precision != "fp32":  # an fp16 file was given
            raise InputError(f"{self.onnx_path} is {self.precision}: {_CPU_FP32}")
        self._ort = ort
        self._torch = torch
        self._options = (threads, optimization)
        self.static_batch = static_batch
        self._sessions: dict[int | None, Any] = {}
        self._output_name = self.contract.output_names[0]
        if not static_batch:
            self._session(None)

    def _session(self, batch: int | None) -> Any:
        """The session for one batch size (or the dynamic-batch one for None), made on first use.

        With the batch fixed (ONNX Runtime's free-dimension override), the graph's
        shape arithmetic folds away and memory is planned once for that shape.
        """
        session = self._sessions.get(batch)
        if session is None:
            options = session_options(*self._options)
            if batch is not None:
                options.add_free_dimension_override_by_name(BATCH_AXIS, batch)
            started = time.perf_counter()
            session = self._ort.InferenceSession(
                str(self.onnx_path), sess_options=options, providers=self._providers()
            )
            log.info(
                "onnxruntime session for %s (batch %s) ready in %.1f s",
                self.onnx_path,
                batch or "dynamic",
                time.perf_counter() - started,
            )
            self._sessions[batch] = session
        return session

    @property
    def session(self) -> Any:
        """The most recently made session (for inspection: providers, inputs)."""
        return next(reversed(self._sessions.values()), None) if self._sessions else None

    def warmup(self, batches: tuple[int, ...] = (1, 2)) -> dict[int, float]:
        """Make the session for each batch size and run it once; seconds per batch size."""
        times = {}
        for batch in batches:
            started = time.perf_counter()
            self(*self.contract.sample_inputs(batch, device=self.device))
            times[batch] = time.perf_counter() - started
        return times

    def _graph(self, model, onnx_path, contract, num_tokens, batch, precision, cache_dir):
        from facefit_runtime.contract import contract_for
        from facefit_runtime.export import export_cached, read_contract

        if onnx_path is not None:
            path = Path(onnx_path)
            if not path.is_file():
                raise InputError(
                    f"onnx_path {path} does not exist; export one with `facefit runtime build`"
                )
            recorded, recorded_precision = read_contract(path)
            return path, contract or recorded, recorded_precision
        if model is None:
            raise InputError("denoiser backend 'onnxruntime' needs a model or an onnx_path")
        model = getattr(model, "denoiser", model)  # a whole FaceGenerator: its per-step module
        contract = contract or contract_for(model, num_tokens=num_tokens, batch=tuple(batch))
        path = export_cached(model, contract, precision=precision, cache=cache_dir)
        return path, contract, precision

    def _providers(self) -> list[Any]:
        if self.device.type != "cuda":
            return ["CPUExecutionProvider"]
        import torch

        stream = torch.cuda.current_stream(self.device).cuda_stream
        cuda = {
            "device_id": self.device.index or 0,
            # run on torch's stream: no extra synchronisation between torch and ORT work
            "user_compute_stream": str(stream),
            "cudnn_conv_algo_search": "EXHAUSTIVE",
        }
        return [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]

    def __call__(self, sample, timestep, encoder_hidden_states):
        from facefit_runtime.export import batch_timestep

        batch = sample.shape[0]
        if not self.contract.profile.accepts(batch):
            raise InputError(
                f"batch {batch} is outside the exported range {self.contract.profile.batch}; "
                "build with a wider batch range"
            )
        t = batch_timestep(timestep, batch, sample.device)
        if self.device.type == "cuda":
            return self._run_cuda(sample, t, encoder_hidden_states)
        feed = {
            "sample": _as_numpy(sample),
            "timestep": _as_numpy(t),
            "encoder_hidden_states": _as_numpy(encoder_hidden_states),
        }
        session = self._session(batch if self.static_batch else None)
        (out,) = session.run([self._output_name], feed)
        return self._torch.from_numpy(out).to(device=sample.device, dtype=sample.dtype)

    def _run_cuda(self, sample, timestep, tokens):
        import numpy as np

        torch = self._torch
        inputs = {
            "sample": sample.to(self.device, torch.float32).contiguous(),
            "timestep": timestep.to(self.device).contiguous(),
            "encoder_hidden_states": tokens.to(self.device, torch.float32).contiguous(),
        }
        out = torch.empty(self.contract.profile.output_shape(sample.shape[0]), device=self.device)
        session = self._session(sample.shape[0] if self.static_batch else None)
        binding = session.io_binding()
        for name, tensor in inputs.items():
            binding.bind_input(
                name,
                "cuda",
                self.device.index or 0,
                np.float32,
                tuple(tensor.shape),
                tensor.data_ptr(),
            )
        binding.bind_output(
            self._output_name,
            "cuda",
            self.device.index or 0,
            np.float32,
            tuple(out.shape),
            out.data_ptr(),
        )
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return out.to(device=sample.device, dtype=sample.dtype)

    def close(self) -> None:
        self._sessions.clear()


def _resolve_device(device: Any) -> Any:
    import torch

    if device == "auto":
        device = "cuda" if cuda_available()[0] else "cpu"
    return torch.device(device)


def _module_device(model: Any) -> Any:
    model = getattr(model, "denoiser", model)
    for tensor in model.parameters():
        return tensor.device
    return "cpu"


def _as_numpy(tensor: Any) -> Any:
    import torch

    return tensor.detach().to("cpu", torch.float32).contiguous().numpy()


@hookimpl
def register_denoiser_backends(register) -> None:
    register(OnnxRuntimeBackend)
