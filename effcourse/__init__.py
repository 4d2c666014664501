"""effcourse: companion package of the energy-efficient deep learning course.

Importing it makes sure TensorFlow resolves `tf.keras` to Keras 2 (`tf_keras`),
which the Model Optimization Toolkit requires. The install also ships a `.pth`
file that sets the same variable at interpreter start, so importing TensorFlow
first works too.
"""
import os
import sys

if os.environ.setdefault("TF_USE_LEGACY_KERAS", "1") != "1":
    raise ImportError(
        "effcourse needs Keras 2 (tf_keras) because the Model Optimization Toolkit does not "
        f"support Keras 3, but TF_USE_LEGACY_KERAS={os.environ['TF_USE_LEGACY_KERAS']!r} is set. "
        "Unset it (or set it to 1) and restart the kernel."
    )
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if "tensorflow" in sys.modules and not sys.modules["tensorflow"].keras.__name__.startswith("tf_keras"):
    raise ImportError(
        "TensorFlow was imported with Keras 3 before effcourse could select Keras 2. "
        "Restart the kernel and import effcourse (or set TF_USE_LEGACY_KERAS=1) before TensorFlow."
    )

__version__ = "0.1.0"
