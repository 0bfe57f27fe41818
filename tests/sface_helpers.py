"""A tiny SFace-shaped ONNX graph for tests that need an SFace model without its weights."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def write_tiny_sface(
    path,
    *,
    dim: int = 128,
    seed: int = 0,
    first_stride: int = 2,
    asymmetric_pad: bool = True,
    weights_as_inputs: bool = True,
) -> None:
    """Normalize, conv/BN/PReLU (output ``"p"``), depthwise conv, pointwise conv, FC + BN.

    ``asymmetric_pad`` pads the depthwise conv as SFace does (bottom/right only);
    ``weights_as_inputs`` also lists the initializers as graph inputs, as older
    exporters (and SFace's file) do.
    """
    rng = np.random.default_rng(seed)

    def init(name, *shape, scale=0.1, positive=False):
        value = rng.normal(0, scale, shape).astype(np.float32)
        return numpy_helper.from_array(np.abs(value) + 0.5 if positive else value, name)

    side = 112 // first_stride // 4  # after the first conv and two stride-2 convs
    weights = [
        numpy_helper.from_array(np.array([127.5], np.float32), "scalar_op1"),
        numpy_helper.from_array(np.array([0.0078125], np.float32), "scalar_op2"),
        init("c1_w", 8, 3, 3, 3, scale=0.3),
        init("bn_g", 8, positive=True),
        init("bn_b", 8),
        init("bn_m", 8),
        init("bn_v", 8, positive=True),
        init("pr", 8, 1, 1),
        init("dw_w", 8, 1, 3, 3, scale=0.3),
        init("c2_w", 4, 8, 1, 1, scale=0.3),
        init("c2_b", 4),
        init("fc_w", dim, 4 * side * side, scale=0.05),
        init("fc_b", dim),
        init("f_g", dim, positive=True),
        init("f_b", dim),
        init("f_m", dim),
        init("f_v", dim, positive=True),
    ]
    nodes = [
        helper.make_node("Sub", ["data", "scalar_op1"], ["s"]),
        helper.make_node("Mul", ["s", "scalar_op2"], ["m"]),
        helper.make_node(
            "Conv",
            ["m", "c1_w"],
            ["c1"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            strides=[first_stride, first_stride],
        ),
        helper.make_node(
            "BatchNormalization", ["c1", "bn_g", "bn_b", "bn_m", "bn_v"], ["bn"], epsilon=1e-3
        ),
        helper.make_node("PRelu", ["bn", "pr"], ["p"]),
        helper.make_node(
            "Conv",
            ["p", "dw_w"],
            ["dw"],
            kernel_shape=[3, 3],
            pads=[0, 0, 1, 1] if asymmetric_pad else [1, 1, 1, 1],
            strides=[2, 2],
            group=8,
        ),
        helper.make_node(
            "Conv", ["dw", "c2_w", "c2_b"], ["c2"], kernel_shape=[1, 1], strides=[2, 2]
        ),
        helper.make_node("Dropout", ["c2"], ["d"], ratio=0.4),
        helper.make_node("Flatten", ["d"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["g"], transB=1),
        helper.make_node(
            "BatchNormalization", ["g", "f_g", "f_b", "f_m", "f_v"], ["fc1"], epsilon=2e-5
        ),
    ]
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])]
    if weights_as_inputs:
        inputs += [
            helper.make_tensor_value_info(w.name, TensorProto.FLOAT, list(w.dims)) for w in weights
        ]
    graph = helper.make_graph(
        nodes,
        "tiny-sface",
        inputs,
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, dim])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
