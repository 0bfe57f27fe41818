"""The ONNX → torch converter against ONNX Runtime, one small graph per group of operators."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from facefit.weights.onnx_torch import SUPPORTED_OPS, OnnxGraphModule, UnsupportedOnnxError


def _model(nodes, weights, in_shape, out_rank=2):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape[1:]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * out_rank)],
        [numpy_helper.from_array(w, name) for name, w in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _compare(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})[0]
    with torch.no_grad():
        got = OnnxGraphModule(model)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


rng = np.random.default_rng(0)


def _w(*shape):
    return rng.normal(0, 0.3, shape).astype(np.float32)


def test_pooling_relu_add_sigmoid():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node(
            "AveragePool", ["m"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]
        ),
        helper.make_node("Add", ["a", "m"], ["s"]),
        helper.make_node("Sigmoid", ["s"], ["y"]),
    ]
    model = _model(nodes, {"w": _w(4, 3, 3, 3)}, (2, 3, 16, 16), out_rank=4)
    _compare(model, _w(2, 3, 16, 16))


def test_global_pool_reshape_matmul_div_identity():
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["g"]),
        helper.make_node("Reshape", ["g", "shape"], ["r"]),
        helper.make_node("MatMul", ["r", "w"], ["mm"]),
        helper.make_node("Div", ["mm", "two"], ["d"]),
        helper.make_node("Identity", ["d"], ["y"]),
    ]
    weights = {"shape": np.array([0, -1], np.int64), "w": _w(6, 5), "two": np.float32([2.0])}
    model = _model(nodes, weights, (3, 6, 7, 7))
    _compare(model, _w(3, 6, 7, 7))


def test_gemm_transposes_and_scales():
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], alpha=0.5, beta=2.0, transB=1)]
    _compare(_model(nodes, {"w": _w(4, 6), "b": _w(4)}, (5, 6)), _w(5, 6))


def test_unsupported_attributes_are_refused_not_approximated():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], auto_pad="SAME_UPPER")
    ]
    module = OnnxGraphModule(_model(nodes, {"w": _w(2, 3, 3, 3)}, (1, 3, 8, 8), out_rank=4))
    with pytest.raises(UnsupportedOnnxError, match="auto_pad"):
        module(torch.zeros(1, 3, 8, 8))


def test_weights_are_buffers_that_move_with_the_module():
    nodes = [helper.make_node("Gemm", ["x", "w.0"], ["y"])]
    module = OnnxGraphModule(_model(nodes, {"w.0": _w(3, 2)}, (1, 3)))
    assert list(module.state_dict()) == ["w_w_0"]
    assert module.to(torch.float64)(torch.zeros(1, 3, dtype=torch.float64)).dtype == torch.float64
    assert "Conv" in SUPPORTED_OPS and "PRelu" in SUPPORTED_OPS
