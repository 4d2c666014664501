"""Lesson helpers, shared plots, and the hardware and library versions a run header names."""
import os
import platform
import sys
import types

import pytest

from effcourse import hardware, notebook, plots, profiles


def test_check_passes_and_fails_with_the_claim(capsys):
    notebook.check(True, "one is one")
    assert capsys.readouterr().out == "Check passed: one is one\n"
    with pytest.raises(AssertionError, match="Check failed: two is one"):
        notebook.check(False, "two is one")


def test_run_header_names_profile_and_hardware(monkeypatch, capsys):
    import pandas as pd

    monkeypatch.setenv(profiles.ENV_VAR, "workshop")
    with pd.option_context("display.max_colwidth", 50):
        assert notebook.run_header().name == "workshop"
        name = "pruned per-block plan (structured L1), 30 epochs of fine-tuning"
        assert name in pd.DataFrame({"model": [name]}).to_html(), "long names are shown in full"
    out = capsys.readouterr().out
    assert "Profile : workshop" in out and "Hardware:" in out and "tensorflow" in out


def test_show_source_displays_code(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    notebook.show_source(notebook.check)
    assert "def check(" in shown[0].data and shown[0].data.startswith("```python")
    assert "<style" not in shown[0].data


def test_learning_curves_draw_each_model():
    history = {"loss": [2.0, 1.5], "val_loss": [2.1, 1.7], "accuracy": [0.2, 0.4], "val_accuracy": [0.2, 0.35]}
    fig = plots.learning_curves({"a": history, "b": history})
    accuracy_axis, loss_axis = fig.axes
    assert len(accuracy_axis.lines) == 4 and len(loss_axis.lines) == 4


def test_soft_labels_draw_a_row_of_bars_per_image():
    import numpy as np
    from matplotlib.figure import Figure

    images = np.zeros((3, 32, 32, 3), np.uint8)
    probabilities = {"T = 1": np.eye(10)[[0, 1, 2]], "T = 4": np.full((3, 10), 0.1)}
    fig = plots.soft_labels(images, probabilities, [f"class {i}" for i in range(10)], labels=[0, 1, 2])
    assert isinstance(fig, Figure) and len(fig.axes) == 6  # an image and its bars, per image
    image_axis, bars_axis = fig.axes[2], fig.axes[3]  # the second image
    assert image_axis.get_title() == "class 1"
    heights = [patch.get_height() for patch in bars_axis.patches]
    assert len(heights) == 20 and heights[:10] == list(np.eye(10)[1]) and heights[10:] == [0.1] * 10
    assert bars_axis.get_ylim() == (0, 1)
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["T = 1", "T = 4"]
    assert [t.get_text() for t in fig.axes[5].get_xticklabels()][:2] == ["class 0", "class 1"]  # class names once, at the bottom


def test_accuracy_sweeps_draw_a_panel_per_setting_with_its_noise():
    fig = plots.accuracy_sweeps({"T": ([1, 2, 4, 8], [0.5, 0.55, 0.6, 0.58]), "alpha": ([0, 0.5, 1], [0.4, 0.5, 0.45])},
                                images=1000, reference=("alone", 0.45), log2_x=("T",))
    t_axis, alpha_axis = fig.axes
    assert t_axis.get_xscale() == "log" and alpha_axis.get_xscale() == "linear"
    curve, reference = t_axis.lines
    assert list(curve.get_ydata()) == pytest.approx([50, 55, 60, 58]) and list(reference.get_ydata()) == [45, 45]
    assert len(t_axis.collections) == 1  # the shaded 95% interval
    assert "1,000 images" in t_axis.get_ylabel() and alpha_axis.get_xlabel() == "alpha"


# --------------------------------------------------------------------------- hardware


@pytest.fixture
def fresh_hardware_caches():
    """versions() and describe() are cached per process: start and leave them empty."""
    hardware.versions.cache_clear()
    hardware.describe.cache_clear()
    yield
    hardware.versions.cache_clear()
    hardware.describe.cache_clear()


def test_versions_report_the_installed_libraries(fresh_hardware_caches):
    import numpy
    import tensorflow as tf
    import tf_keras

    found = hardware.versions()
    assert found["python"] == platform.python_version()
    assert found["tensorflow"] == tf.__version__
    assert found["tf-keras"] == tf_keras.__version__
    assert found["numpy"] == numpy.__version__
    assert "not installed" not in found.values()


def test_versions_name_a_missing_library(fresh_hardware_caches, monkeypatch):
    monkeypatch.setattr(hardware, "LIBRARIES", ("numpy", "no-such-library-effcourse-test"))
    found = hardware.versions()
    assert found["no-such-library-effcourse-test"] == "not installed"
    assert set(found) == {"python", "numpy", "no-such-library-effcourse-test"}


def test_arm_cpu_features_and_simd_support(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd evtstrm aes asimddp\n")
    flags = hardware.cpu_flags(str(cpuinfo))
    assert flags == {"fp", "asimd", "evtstrm", "aes", "asimddp"}
    assert hardware.simd_support(flags) == ("has: none; lacks: AVX2, AVX-512, AVX-512 VNNI, AVX-VNNI, "
                                            "AVX-512 BF16, AMX-INT8, AMX-BF16")
    every = set(hardware.SIMD_FLAGS)
    assert hardware.simd_support(every).endswith("; lacks: none")
    assert hardware.simd_support({"avx2", "amx_int8"}) == ("has: AVX2, AMX-INT8; lacks: AVX-512, AVX-512 VNNI, "
                                                         "AVX-VNNI, AVX-512 BF16, AMX-BF16")


def test_cpu_threads_follow_the_affinity(monkeypatch):
    if hasattr(os, "sched_getaffinity"):
        assert hardware.cpu_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    assert hardware.cpu_threads() == 2  # the cores this process may use, not the machine's
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert hardware.cpu_threads() == 5


def test_describe_names_cpu_threads_memory_and_gpus(fresh_hardware_caches, monkeypatch):
    real = hardware.describe()
    assert real.startswith(f"{hardware.cpu_model()} ({hardware.cpu_threads()} threads")
    hardware.describe.cache_clear()
    monkeypatch.setattr(hardware, "cpu_model", lambda: "Test CPU 9000")
    monkeypatch.setattr(hardware, "cpu_threads", lambda: 3)
    monkeypatch.setattr(hardware, "memory_gib", lambda: 15.7)
    monkeypatch.setattr(hardware, "gpu_names", lambda: ["GPU A", "GPU B"])
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma"})
    assert hardware.describe() == "Test CPU 9000 (3 threads; AVX2), 16 GiB RAM, GPU A, GPU B"
    hardware.describe.cache_clear()
    monkeypatch.setattr(hardware, "memory_gib", lambda: None)
    monkeypatch.setattr(hardware, "gpu_names", lambda: [])
    monkeypatch.setattr(hardware, "cpu_flags", lambda: set())
    assert hardware.describe() == "Test CPU 9000 (3 threads), no GPU"


def test_vector_instructions_tell_two_cpus_of_one_name_apart():
    assert hardware.vector_instructions({"avx", "avx2", "fma"}) == "AVX2"
    assert hardware.vector_instructions({"avx2", "avx_vnni"}) == "AVX2 with AVX-VNNI"
    assert hardware.vector_instructions({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}) == "AVX-512 with VNNI, BF16"
    assert hardware.vector_instructions({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                                         "amx_bf16", "amx_int8"}) == "AVX-512 with VNNI, BF16, FP16; AMX"
    assert hardware.vector_instructions({"avx512f"}) == "AVX-512"
    assert hardware.vector_instructions({"fp", "asimd"}) == ""  # ARM: no x86 vector units to name
    assert hardware.vector_instructions(set()) == ""


def test_benchmark_results_are_named_by_the_cpus_vector_instructions():
    assert hardware.vector_label({"avx", "avx2", "fma"}) == "avx2"
    assert hardware.vector_label({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8"}) == "avx-512-with-vnni-bf16-amx"
    assert hardware.vector_label({"fp", "asimd"}) == "other"


def test_gpu_names_from_nvml_and_without_it(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(
        nvmlInit=lambda: calls.append("init"),
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda handle: [b"NVIDIA H200", "NVIDIA L4"][handle],  # old pynvml gives bytes
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert hardware.gpu_names() == ["NVIDIA H200", "NVIDIA L4"]
    assert calls == ["init", "shutdown"]

    def no_driver():
        raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setitem(sys.modules, "pynvml", types.SimpleNamespace(nvmlInit=no_driver))
    assert hardware.gpu_names() == []
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    assert hardware.gpu_names() == []


def test_counts_are_written_in_words_as_a_sentence_writes_them():
    assert [notebook.in_words(n) for n in (0, 1, 9, 12)] == ["no", "one", "nine", "twelve"]
    assert notebook.in_words(13) == "13" and notebook.in_words(1000) == "1,000"
