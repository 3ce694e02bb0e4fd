"""Writes the models of the seed lesson's pipelines as ONNX, with fixed, documented
weights, so that tests and examples can compute their answers on their own:

churn_model.onnx (the churn pipeline): one float32 input `features` of width 5,
    x = (total_amount, txn_count, avg_amount, age, tenure)
    churn_probability = sigmoid(0.5 + w . x),  w = (-0.002, -0.15, 0.004, 0.01, -0.08)
    (little spending, few transactions and a short tenure make churn likely); output
    `churn_probability`, float32 [N].

fraud_score_model.onnx (the fraud enrichment pipeline and the hybrid cascade): named
inputs `amount` float32 [N], `age` int64 [N], `tenure` int64 [N], `segment` string [N],
    fraud_score = sigmoid(0.004 * amount - 0.03 * age - 0.1 * tenure
                          + 1.5 * (segment == 'new') - 1.0)
    output `fraud_score`, float32 [N].

Run: python3 models/make_lesson_models.py  (needs the `onnx` package; writes next to
this script)
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CHURN_WEIGHTS = [-0.002, -0.15, 0.004, 0.01, -0.08]
CHURN_BIAS = 0.5


def constant(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.array(values, dtype=dtype), name)


def save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], producer_name="sluice")
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, path)


def churn(path):
    nodes = [
        helper.make_node("MatMul", ["features", "weights"], ["logit_column"]),
        helper.make_node("Reshape", ["logit_column", "flat"], ["logit_flat"]),
        helper.make_node("Add", ["logit_flat", "bias"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["churn_probability"]),
    ]
    graph = helper.make_graph(
        nodes,
        "churn",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 5])],
        [helper.make_tensor_value_info("churn_probability", TensorProto.FLOAT, ["N"])],
        initializer=[
            numpy_helper.from_array(np.array(CHURN_WEIGHTS, dtype=np.float32).reshape(5, 1), "weights"),
            constant("bias", [CHURN_BIAS]),
            constant("flat", [-1], np.int64),
        ],
    )
    save(graph, path)


def fraud(path):
    nodes = [
        helper.make_node("Cast", ["age"], ["age_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["tenure"], ["tenure_f"], to=TensorProto.FLOAT),
        helper.make_node("Equal", ["segment", "new_segment"], ["is_new"]),
        helper.make_node("Cast", ["is_new"], ["is_new_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["amount", "w_amount"], ["t_amount"]),
        helper.make_node("Mul", ["age_f", "w_age"], ["t_age"]),
        helper.make_node("Mul", ["tenure_f", "w_tenure"], ["t_tenure"]),
        helper.make_node("Mul", ["is_new_f", "w_new"], ["t_new"]),
        helper.make_node("Sum", ["t_amount", "t_age", "t_tenure", "t_new", "bias"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["fraud_score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fraud_score",
        [
            helper.make_tensor_value_info("amount", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("age", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("tenure", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("segment", TensorProto.STRING, ["N"]),
        ],
        [helper.make_tensor_value_info("fraud_score", TensorProto.FLOAT, ["N"])],
        initializer=[
            numpy_helper.from_array(np.array(["new"], dtype=object), "new_segment"),
            constant("w_amount", [0.004]),
            constant("w_age", [-0.03]),
            constant("w_tenure", [-0.1]),
            constant("w_new", [1.5]),
            constant("bias", [-1.0]),
        ],
    )
    save(graph, path)


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    churn(os.path.join(here, "churn_model.onnx"))
    fraud(os.path.join(here, "fraud_score_model.onnx"))


if __name__ == "__main__":
    main()
