"""Denoiser backend ``compiled``: the model through ``torch.compile``.

On a GPU the default mode is ``reduce-overhead``: Inductor's fused kernels replayed
through CUDA graphs, one graph per batch size (shapes are static: conditioners
have fixed token counts and the generator a fixed size). That removes the ~1,000
kernel launches per UNet call that make eager PyTorch launch-bound on small
models. On a CPU the default is ``max-autotune-no-cudagraphs`` (Inductor's C++
kernels, with autotuned GEMM templates), which needs a C++ compiler.

When compilation is impossible here (no compiler, an unsupported Python, a graph
Inductor cannot handle) the backend says why in a warning and runs the model
eagerly, unless ``strict=True``, where it raises instead.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import shutil
import time
from typing import Any, ClassVar

from facefit import hookimpl
from facefit.errors import BackendUnavailableError, InputError
from facefit.interfaces import DenoiserBackend

log = logging.getLogger(__name__)

GPU_MODE = "reduce-overhead"
CPU_MODE = "max-autotune-no-cudagraphs"
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def available(device: str = "cpu") -> tuple[bool, str]:
    """Whether ``torch.compile`` with Inductor can work on ``device``, and why not."""
    import torch

    try:
        import torch._dynamo
    except ImportError as exc:  # pragma: no cover - torch builds without dynamo
        return False, f"this torch build has no torch._dynamo ({exc})"
    if not torch._dynamo.is_dynamo_supported():
        return False, "torch.compile does not support this Python version"
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            return False, "no CUDA device visible to torch"
        if importlib.util.find_spec("triton") is None:
            return False, "triton is not installed (Inductor needs it for GPU kernels)"
        return True, f"torch {torch.__version__} Inductor + triton, CUDA graphs"
    compiler = _cpp_compiler()
    if compiler is None:
        return False, "no C++ compiler found (Inductor's CPU kernels need g++ or clang++)"
    return True, f"torch {torch.__version__} Inductor, C++ compiler {compiler}"


def _cpp_compiler() -> str | None:
    try:
        from torch._inductor import config

        names = config.cpp.cxx
        names = names if isinstance(names, (list, tuple)) else (names,)
    except Exception:  # pragma: no cover - private config moved
        names = ()
    for name in (*[n for n in names if n], "g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CompiledBackend(DenoiserBackend):
    """``torch.compile`` (Inductor; CUDA graphs on a GPU), falling back to eager with a warning.

    Options: ``device`` (default: where the model is); ``mode`` (default
    ``reduce-overhead`` on CUDA, ``max-autotune-no-cudagraphs`` on CPU);
    ``precision`` ``fp32``/``fp16``/``bf16`` (default: the model's dtype);
    ``fullgraph``; ``dynamic`` (default: static shapes with CUDA graphs, PyTorch's
    automatic dynamic batch on the CPU); ``strict`` raises instead of falling back.
    """

    host_options = ("model",)
    name: ClassVar[str] = "compiled"

    def __init__(
        self,
        model: Any = None,
        *,
        device: str | None = None,
        mode: str | None = None,
        precision: str | None = None,
        fullgraph: bool = False,
        dynamic: bool | None = None,
        strict: bool = False,
        backend: str = "inductor",
    ) -> None:
        import torch

        from facefit_runtime.export import DenoiserAdapter

        if model is None:
            raise InputError("denoiser backend 'compiled' needs the model to compile")
        model = getattr(model, "denoiser", model)  # a whole FaceGenerator: its per-step module
        self.device = torch.device(device) if device else _module_device(model)
        if precision and precision not in DTYPES:
            raise InputError(f"precision must be one of {', '.join(DTYPES)}, got {precision!r}")
        dtype = getattr(torch, DTYPES[precision]) if precision else None
        if dtype is not None and _module_dtype(model) != dtype:
            model = copy.deepcopy(model).to(dtype)  # leave the caller's model as it is
        model = model.to(self.device).eval()
        self.dtype = _module_dtype(model)
        self.mode = mode or (GPU_MODE if self.device.type == "cuda" else CPU_MODE)
        self.cuda_graphs = (
            backend == "inductor"
            and self.device.type == "cuda"
            and self.mode in ("reduce-overhead", "max-autotune")
        )
        self.strict = strict
        self.fallback_reason: str | None = None
        self._eager = DenoiserAdapter(model, None).eval()
        self._compiled = None
        ok, why = available(str(self.device)) if backend == "inductor" else (True, backend)
        if not ok:
            self._fall_back(why)
        else:
            # mode is Inductor's setting; other dynamo backends (tests use "aot_eager") take none
            mode_arg = {"mode": self.mode} if backend == "inductor" else {}
            if dynamic is None:
                # CUDA graphs need static shapes (one graph per batch size); on the CPU let
                # dynamo make the batch symbolic after the second size: two compiles, not four
                dynamic = False if self.cuda_graphs else None
            self._compiled = torch.compile(
                self._eager, dynamic=dynamic, fullgraph=fullgraph, backend=backend, **mode_arg
            )
        self._torch = torch

    @property
    def is_compiled(self) -> bool:
        """False once the backend fell back to eager."""
        return self._compiled is not None

    def _fall_back(self, why: str) -> None:
        message = (
            f"denoiser backend 'compiled': torch.compile is unavailable on {self.device} ({why})"
        )
        if self.strict:
            raise BackendUnavailableError(f"{message}; use the 'eager' or 'onnxruntime' backend")
        log.warning("%s; running the model eagerly instead (eager speed)", message)
        self.fallback_reason = why
        self._compiled = None

    def __call__(self, sample, timestep, encoder_hidden_states):
        from facefit_runtime.export import batch_timestep

        torch = self._torch
        out_dtype, out_device = sample.dtype, sample.device
        sample = sample.to(self.device, self.dtype)
        tokens = encoder_hidden_states.to(self.device, self.dtype)
        t = batch_timestep(timestep, sample.shape[0], self.device)
        with torch.inference_mode():
            if self._compiled is not None:
                try:
                    if self.cuda_graphs:
                        torch.compiler.cudagraph_mark_step_begin()
                    out = self._compiled(sample, t, tokens)
                    if self.cuda_graphs:
                        # CUDA-graph outputs live in a pool the next replay overwrites
                        out = out.clone()
                    return out.to(out_device, out_dtype)
                except Exception as exc:
                    out = self._eager(sample, t, tokens)  # raises if the inputs are at fault
                    self._fall_back(f"compilation failed: {type(exc).__name__}: {_first_line(exc)}")
                    return out.to(out_device, out_dtype)
            return self._eager(sample, t, tokens).to(out_device, out_dtype)

    def warmup(self, contract: Any, batches: tuple[int, ...] = (1, 2)) -> dict[int, float]:
        """Compile (and capture CUDA graphs) ahead for each batch size; seconds per batch size."""
        times = {}
        for batch in batches:
            inputs = contract.sample_inputs(batch, device=self.device, dtype=self.dtype)
            started = time.perf_counter()
            for _ in range(3 if self.cuda_graphs else 1):  # cudagraph trees record on the 3rd call
                self(*inputs)
            if self.device.type == "cuda":
                self._torch.cuda.synchronize(self.device)
            times[batch] = time.perf_counter() - started
        return times

    def close(self) -> None:
        self._compiled = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""


def _module_device(model: Any) -> Any:
    import torch

    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _module_dtype(model: Any) -> Any:
    import torch

    for tensor in model.parameters():
        return tensor.dtype
    return torch.float32


@hookimpl
def register_denoiser_backends(register) -> None:
    register(CompiledBackend)
