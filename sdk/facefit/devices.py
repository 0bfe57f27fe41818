"""Turning a device name from a user or a config into one torch can use here."""

from __future__ import annotations

from facefit.errors import InputError

__all__ = ["resolve_device"]


def resolve_device(name: str, what: str = "device") -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` → a device torch can use here, or an error.

    ``auto`` picks the GPU when torch sees one. ``what`` names the setting in errors
    (``"train-matcher: device"``). Imports torch.
    """
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(
                f"{what} {name!r} requested but no CUDA GPU is usable here "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use cpu"
            )
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise InputError(
                f"{what} {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return name
    raise InputError(f"unknown {what} {name!r}; use cpu, cuda, cuda:N or auto")
