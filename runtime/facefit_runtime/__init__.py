"""facefit's denoiser runtime: backends that run the UNet (eager, compiled, ONNX Runtime, TensorRT)."""
