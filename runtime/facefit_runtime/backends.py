"""Which backends can run here, and making one with the options it understands.

Used by ``facefit runtime info|build|bench`` and the benchmarks. Backends are
created through the registry, by name, exactly as a pipeline config does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BACKENDS = ("eager", "compiled", "onnxruntime", "tensorrt")


@dataclass(frozen=True)
class Availability:
    backend: str
    device: str
    ok: bool
    detail: str


def availability() -> list[Availability]:
    """One row per backend and device: can it run here, and if not, why not."""
    import torch

    from facefit_runtime import compiled, onnxruntime_backend, tensorrt

    cuda = torch.cuda.is_available()
    gpu = f"{torch.cuda.get_device_name(0)}" if cuda else "no CUDA device visible to torch"
    rows = [
        Availability("eager", "cpu", True, f"torch {torch.__version__}"),
        Availability("eager", "cuda", cuda, gpu if cuda else f"{gpu} (torch {torch.__version__})"),
    ]
    for device in ("cpu", "cuda"):
        ok, why = compiled.available(device)
        rows.append(Availability("compiled", device, ok, why))
    ok, why = onnxruntime_backend.available()
    rows.append(Availability("onnxruntime", "cpu", ok, why))
    ok, why = onnxruntime_backend.cuda_available()
    rows.append(Availability("onnxruntime", "cuda", ok, why))
    ok, why = tensorrt.available()
    rows.append(Availability("tensorrt", "cuda", ok, why))
    return rows


def backend_options(
    name: str,
    *,
    contract: Any,
    device: str = "cpu",
    precision: str = "fp32",
    cache_dir: Any = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The options each backend takes for the same intent (device, precision, shapes)."""
    dtypes = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
    if name == "eager":
        # fp32 is the models' own dtype: no cast (diffusers warns on casting to the same)
        options = {"device": device, "dtype": None if precision == "fp32" else dtypes[precision]}
    elif name == "compiled":
        options = {"device": device, "precision": precision}
    elif name in ("onnxruntime", "tensorrt"):
        options = {
            "contract": contract,
            "batch": contract.profile.batch,
            "precision": precision,
            "cache_dir": cache_dir,
            "device": device,
        }
    else:  # a vendor's backend: it gets the common ones it declares
        options = {"device": device}
    return {**options, **(extra or {})}


def create_backend(
    name: str,
    model: Any,
    *,
    contract: Any,
    device: str = "cpu",
    precision: str = "fp32",
    cache_dir: Any = None,
    registry: Any = None,
    **extra: Any,
) -> Any:
    """Create backend ``name`` for ``model`` through the plugin registry."""
    from facefit.registry import Registry

    registry = registry or Registry.load()
    options = backend_options(
        name,
        contract=contract,
        device=device,
        precision=precision,
        cache_dir=cache_dir,
        extra=extra,
    )
    return registry.create_hosted("denoiser_backend", name, {"model": model}, **options)
