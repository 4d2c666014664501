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
    monkeypatch.setenv(profiles.ENV_VAR, "workshop")
    assert notebook.run_header().name == "workshop"
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
    assert real.startswith(f"{hardware.cpu_model()} ({hardware.cpu_threads()} threads)")
    hardware.describe.cache_clear()
    monkeypatch.setattr(hardware, "cpu_model", lambda: "Test CPU 9000")
    monkeypatch.setattr(hardware, "cpu_threads", lambda: 3)
    monkeypatch.setattr(hardware, "memory_gib", lambda: 15.7)
    monkeypatch.setattr(hardware, "gpu_names", lambda: ["GPU A", "GPU B"])
    assert hardware.describe() == "Test CPU 9000 (3 threads), 16 GiB RAM, GPU A, GPU B"
    hardware.describe.cache_clear()
    monkeypatch.setattr(hardware, "memory_gib", lambda: None)
    monkeypatch.setattr(hardware, "gpu_names", lambda: [])
    assert hardware.describe() == "Test CPU 9000 (3 threads), no GPU"


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
