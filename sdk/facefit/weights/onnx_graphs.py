"""Small fixes to ONNX graphs in memory (no torch, no onnxruntime needed)."""

from __future__ import annotations

from typing import Any


def batchable(model: Any) -> Any:
    """``model`` with initializers dropped from its inputs and a free batch dimension.

    Older exporters list the weights among the graph inputs, which stops ONNX
    Runtime from folding constants, and fix the batch to 1; both are changed in
    memory, the file is not.
    """
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].dim_param = "N"
    return model
