"""Every private API of TensorFlow, LiteRT and the Model Optimization Toolkit that
`effcourse.internals` uses: when an upgrade removes one, a test here fails naming it. Then what
each wrapper does with it, on a tiny converted model."""
import importlib

import numpy as np
import pytest
import tensorflow as tf
from tf_keras import layers

from effcourse import convert, internals
from effcourse.litert import LiteRTModel

SCHEMA = "tensorflow.lite.python.schema_py_generated"
FLATBUFFER_UTILS = "ai_edge_litert.tools.flatbuffer_utils"
CLUSTER_REGISTRY = ("tensorflow_model_optimization.python.core.quantization.keras.collab_opts."
                    "cluster_preserve.cluster_preserve_quantize_registry")


@pytest.fixture(scope="module")
def lite(model):
    return convert.to_litert(model)


def import_or_fail(module: str, used_for: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        pytest.fail(f"{module} no longer imports ({err}): effcourse.internals.{used_for} needs it.")


# --------------------------------------------------------------------------- the private APIs, by name


def test_litert_interpreter_has_get_ops_details():
    from ai_edge_litert.interpreter import Interpreter

    assert hasattr(Interpreter, "_get_ops_details"), (
        "ai_edge_litert Interpreter._get_ops_details is gone: internals.ops_details (LiteRTModel.ops, "
        "layer_macs, parameters) needs another way to list a graph's ops.")


def test_tflite_schema_module_has_model_and_tensor_types():
    schema = import_or_fail(SCHEMA, "flatbuffer_model and tensor_type_names")
    assert hasattr(schema, "ModelT") and hasattr(schema.ModelT, "InitFromObj"), (
        f"{SCHEMA}.ModelT(.InitFromObj) is gone: internals.flatbuffer_model cannot build the object tree.")
    assert hasattr(schema, "Model") and hasattr(schema.Model, "GetRootAsModel"), (
        f"{SCHEMA}.Model.GetRootAsModel is gone: internals.flatbuffer_model cannot read a .tflite file.")
    assert hasattr(schema, "TensorType"), f"{SCHEMA}.TensorType is gone: internals.tensor_type_names needs it."


def test_litert_flatbuffer_utils_has_what_strip_strings_uses():
    utils = import_or_fail(FLATBUFFER_UTILS, "strip_strings")
    for name in ("read_model_from_bytearray", "strip_strings", "convert_object_to_bytearray"):
        assert hasattr(utils, name), f"{FLATBUFFER_UTILS}.{name} is gone: internals.strip_strings needs it."


def test_tflite_converter_has_the_per_channel_flag(model):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    assert hasattr(converter, internals.PER_CHANNEL_FLAG), (
        f"tf.lite.TFLiteConverter.{internals.PER_CHANNEL_FLAG} is gone: internals.disable_per_channel "
        "(per-tensor int8, convert.converter_for(per_tensor=True)) cannot be chosen.")
    assert getattr(converter, internals.PER_CHANNEL_FLAG) is False  # per channel unless asked


def test_toolkit_cluster_preserve_registry_has_get_centroids_and_get_unique():
    registry = import_or_fail(CLUSTER_REGISTRY, "per_tensor_cluster_preservation")
    for name in ("get_centroids", "get_unique"):
        assert callable(getattr(registry, name, None)), (
            f"{CLUSTER_REGISTRY}.{name} is gone: internals.per_tensor_cluster_preservation silently "
            "stops patching, and cluster-preserving QAT builds a per-channel graph again.")


# --------------------------------------------------------------------------- what the wrappers do


def test_ops_details_lists_the_graph_ops(lite):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=lite.content)
    ops = internals.ops_details(interpreter)
    names = [op["op_name"] for op in ops]
    assert names[0] == "CONV_2D" and names[-1] == "FULLY_CONNECTED"
    assert names.count("CONV_2D") == 1 and names.count("FULLY_CONNECTED") == 1
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    conv = ops[0]
    assert tuple(tensors[conv["inputs"][1]]["shape"]) == (6, 3, 3, 3)  # the kernel, output channels first
    assert conv["inputs"][0] == interpreter.get_input_details()[0]["index"]
    assert ops[-1]["outputs"][0] == interpreter.get_output_details()[0]["index"]


def test_flatbuffer_model_and_tensor_type_names(model, lite, images):
    tree = internals.flatbuffer_model(lite.content)
    assert len(tree.subgraphs) == 1 and len(tree.buffers) > 1
    names = internals.tensor_type_names()
    assert names[0] == "float32"
    schema = importlib.import_module(SCHEMA)
    assert names[schema.TensorType.INT8] == "int8" and names[schema.TensorType.INT32] == "int32"
    assert all(name == name.lower() for name in names.values())

    def kernel_type(content: bytes) -> str:
        tree = internals.flatbuffer_model(content)
        subgraph = tree.subgraphs[0]
        codes = [tree.operatorCodes[op.opcodeIndex] for op in subgraph.operators]
        conv = next(op for op, code in zip(subgraph.operators, codes)
                    if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.CONV_2D)
        kernel = subgraph.tensors[conv.inputs[1]]
        assert list(kernel.shape) == [6, 3, 3, 3]
        assert len(tree.buffers[kernel.buffer].data) == np.prod(kernel.shape) * (4 if names[kernel.type] == "float32" else 1)
        return names[kernel.type]

    assert kernel_type(lite.content) == "float32"
    assert kernel_type(convert.to_litert(model, "int8", data=images).content) == "int8"


def test_strip_strings_is_smaller_and_predicts_the_same(lite, images):
    stripped = internals.strip_strings(lite.content)
    assert len(stripped) < len(lite.content)
    assert all(not t.name for t in internals.flatbuffer_model(stripped).subgraphs[0].tensors)
    assert any(t.name for t in internals.flatbuffer_model(lite.content).subgraphs[0].tensors)
    again = LiteRTModel(stripped, num_threads=1)
    np.testing.assert_array_equal(again.predict(images), LiteRTModel(lite.content, num_threads=1).predict(images))


def test_disable_per_channel_sets_the_flag_and_gives_one_scale_per_kernel(model, images):
    from ai_edge_litert.interpreter import Interpreter

    converter = convert.inference_converter(model)
    assert internals.disable_per_channel(converter) is converter
    assert getattr(converter, internals.PER_CHANNEL_FLAG) is True

    def kernel_scales(per_tensor: bool) -> int:
        content = convert.convert(convert.converter_for(model, "int8", data=images, per_tensor=per_tensor))
        interpreter = Interpreter(model_content=content)
        conv = next(op for op in internals.ops_details(interpreter) if op["op_name"] == "CONV_2D")
        tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
        return len(tensors[conv["inputs"][1]]["quantization_parameters"]["scales"])

    assert kernel_scales(per_tensor=False) == 6  # one scale per output channel
    assert kernel_scales(per_tensor=True) == 1  # the flag still does what it says


def test_disable_per_channel_without_the_flag_is_a_clear_error():
    class OldConverter:
        pass

    converter = OldConverter()
    with pytest.raises(AttributeError, match=f"no {internals.PER_CHANNEL_FLAG}.*per-tensor"):
        internals.disable_per_channel(converter)
    assert not hasattr(converter, internals.PER_CHANNEL_FLAG)  # nothing set on the way out


def test_per_tensor_cluster_preservation_patches_and_restores():
    registry = importlib.import_module(CLUSTER_REGISTRY)
    original = registry.get_centroids
    conv = layers.Conv2D(3, 3)
    conv.build((None, 5, 5, 2))
    # Each output channel holds the same three values: what makes the toolkit guess "per channel".
    w = tf.constant(np.tile(np.array([-1.0, 0.5, 2.0], np.float32), 18).reshape(3, 3, 2, 3).transpose(0, 1, 3, 2).copy())
    wrapper = type("Wrapper", (), {"layer": conv})()
    assert original(wrapper, w, "channels_last")[3]  # unpatched: per channel
    with internals.per_tensor_cluster_preservation():
        assert registry.get_centroids is not original
        centroids, count, index, per_channel = registry.get_centroids(wrapper, w, "channels_last")
        assert not per_channel and int(count) == 3
        np.testing.assert_array_equal(np.sort(centroids.numpy()), [-1.0, 0.5, 2.0])
        assert index.shape == w.shape
        np.testing.assert_array_equal(tf.gather(centroids, index).numpy(), w.numpy())
    assert registry.get_centroids is original
    with pytest.raises(RuntimeError, match="boom"):
        with internals.per_tensor_cluster_preservation():
            assert registry.get_centroids is not original
            raise RuntimeError("boom")
    assert registry.get_centroids is original


def test_per_tensor_cluster_preservation_warns_without_the_internals(monkeypatch):
    registry = importlib.import_module(CLUSTER_REGISTRY)
    monkeypatch.delattr(registry, "get_unique")
    original = registry.get_centroids
    ran = []
    with pytest.warns(UserWarning, match="lacks the internals"):
        with internals.per_tensor_cluster_preservation():
            ran.append(registry.get_centroids)
    assert ran == [original]  # the block ran, unpatched
