"""facefit's denoiser runtime: backends that run the UNet (eager, compiled, ONNX Runtime, TensorRT).

Backends (each registered through the ``facefit`` entry-point group, created by name):
:mod:`~facefit_runtime.eager`, :mod:`~facefit_runtime.compiled`,
:mod:`~facefit_runtime.onnxruntime_backend`, :mod:`~facefit_runtime.tensorrt`.
Their shared parts: :mod:`~facefit_runtime.contract` (names, shapes, batch range),
:mod:`~facefit_runtime.export` (ONNX export), :mod:`~facefit_runtime.cache` (the
engine cache), :mod:`~facefit_runtime.parity` (agreement with eager),
:mod:`~facefit_runtime.timing`, :mod:`~facefit_runtime.backends` and
:mod:`~facefit_runtime.models` (reference UNets for tests and benchmarks).
See docs/deploying.md for choosing one.
"""
