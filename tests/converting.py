"""Test helper: convert a Keras model to LiteRT bytes, float32 or full-integer int8."""
import tensorflow as tf


def converter_for(model, int8_images=None) -> tf.lite.TFLiteConverter:
    """A float32 converter, or a full-integer int8 one (int8 inputs and outputs) calibrated on `int8_images`."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8_images is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in int8_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter


def convert(model, int8_images=None) -> bytes:
    """The converted model's bytes (see `converter_for`)."""
    return converter_for(model, int8_images).convert()
