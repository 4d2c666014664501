"""effcourse: companion package of the energy-efficient deep learning course.

The modules follow the course's flow, one concern each:

    settings      profiles (how much work a run does), paths (where results go, how paths
                  print), hardware (what a figure was measured on; its 16-bit float support)
    data          data/: CIFAR-10 and any class-per-folder image set, pipelines, samples
    models        models (architectures), recipes (training), zoo (trained-model cache),
                  kerasutil (copying models, finding layers and kernels through wrappers)
    techniques    pruning (unstructured), surgery (structured: whole filters),
                  quantization (fake quantization, bit sweeps)
    search        search_space (candidate CNNs, costs, the proxy), search (Optuna workers, fronts)
    deployment    convert (Keras -> LiteRT: float32, float16, int8), litert (running and
                  inspecting converted models), internals (every private API, in one place)
    measurement   measure (parameters, MACs, bytes, accuracy), stats (noise: intervals,
                  paired tests, verdicts), latency (interleaved timing), energy (meters),
                  joules (the energy method: windows, repeats, idle subtracted),
                  counters (what they read: RAPL, NVML, the estimate), carbon (CO2 from
                  energy, CodeCarbon beside), training (dtype policies trained together)
    results       report (the report card; models measured together), results (cards and
                  the store), tabular (how measured tables show themselves), plots, widgets
    lessons       notebook (lesson helpers), exercises + solutions (checked exercises and
                  the teachers' answers), quiz (kernel-free quizzes), course + cli (`effcourse run`)

Importing it makes sure TensorFlow resolves `tf.keras` to Keras 2 (`tf_keras`),
which the Model Optimization Toolkit requires. The install also ships a `.pth`
file that sets the same variable at interpreter start, so importing TensorFlow
first works too.
"""
import contextlib
import os
import sys

if os.environ.setdefault("TF_USE_LEGACY_KERAS", "1") != "1":
    raise ImportError(
        "effcourse needs Keras 2 (tf_keras) because the Model Optimization Toolkit does not "
        f"support Keras 3, but TF_USE_LEGACY_KERAS={os.environ['TF_USE_LEGACY_KERAS']!r} is set. "
        "Unset it (or set it to 1) and restart the kernel."
    )
# TensorFlow's C++ log lines (CUDA probing on a CPU machine) are noise in a lesson; set the
# variable to 0 yourself to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def _silenced_stderr():
    """Within this block, what C++ code writes straight to file descriptor 2 (TensorFlow's start-up
    messages, LiteRT's "Created TensorFlow Lite XNNPACK delegate") is dropped: notebooks would
    show it as red output. Python exceptions still propagate."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


if "tensorflow" not in sys.modules:
    with _silenced_stderr():
        import tensorflow  # noqa: F401
        import tf_keras  # noqa: F401
elif not sys.modules["tensorflow"].keras.__name__.startswith("tf_keras"):
    raise ImportError(
        "TensorFlow was imported with Keras 3 before effcourse could select Keras 2. "
        "Restart the kernel and import effcourse (or set TF_USE_LEGACY_KERAS=1) before TensorFlow."
    )

__version__ = "0.1.0"
