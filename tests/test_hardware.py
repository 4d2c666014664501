"""What a machine offers for 16-bit floats, from (fake) GPU details and CPU flags, and what each
dtype policy should therefore do to training speed."""
import pytest

from effcourse import hardware

A100 = {"device_name": "NVIDIA A100-SXM4-40GB", "compute_capability": (8, 0)}
T4 = {"device_name": "NVIDIA T4", "compute_capability": (7, 5)}
P100 = {"device_name": "Tesla P100", "compute_capability": (6, 0)}


def expected(gpus=(), flags=()):
    machine = hardware.reduced_precision(list(gpus), set(flags))
    return {policy: machine.expect(policy)[0] for policy in ("mixed_float16", "mixed_bfloat16")}


def test_tensor_cores_decide_on_a_gpu_whatever_the_cpu():
    assert expected([A100], {"avx2"}) == {"mixed_float16": "faster", "mixed_bfloat16": "faster"}
    assert expected([T4], {"amx_bf16"}) == {"mixed_float16": "faster", "mixed_bfloat16": "not faster"}
    assert expected([P100]) == {"mixed_float16": "not faster", "mixed_bfloat16": "not faster"}
    assert expected([{"device_name": "some GPU"}]) == {"mixed_float16": "not faster", "mixed_bfloat16": "not faster"}
    assert hardware.reduced_precision([T4], set()).tensor_cores and not hardware.reduced_precision([P100], set()).tensor_cores


def test_the_best_gpu_is_the_one_named():
    machine = hardware.reduced_precision([P100, A100], set())
    assert machine.expect("mixed_bfloat16") == ("faster", machine.expect("mixed_bfloat16")[1])
    assert "A100" in machine.expect("mixed_bfloat16")[1] and "8.0" in machine.expect("mixed_bfloat16")[1]


def test_cpu_flags_decide_without_a_gpu(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert expected(flags={"avx2", "fma"}) == {"mixed_float16": "slower", "mixed_bfloat16": "slower"}
    assert expected(flags={"avx512f", "avx512_bf16"}) == {"mixed_float16": "slower", "mixed_bfloat16": "possibly faster"}
    assert expected(flags={"avx512_bf16", "amx_bf16", "amx_fp16"})["mixed_bfloat16"] == "faster"
    assert expected(flags={"avx512_fp16"})["mixed_float16"] == "slower"


def test_float16_needs_xla_only_where_onednn_takes_it_on_a_cpu_with_float16_instructions(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)  # oneDNN on, TensorFlow's default on x86
    sapphire_rapids = hardware.reduced_precision([], {"avx512_fp16", "amx_bf16"})
    assert sapphire_rapids.float16_needs_xla and "reference kernel" in sapphire_rapids.expect("mixed_float16")[1]
    assert not hardware.reduced_precision([], {"avx512_bf16"}).float16_needs_xla
    assert not hardware.reduced_precision([A100], {"avx512_fp16"}).float16_needs_xla


def test_onednn_switched_off_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    machine = hardware.reduced_precision([], {"avx512_fp16"})
    assert not machine.onednn and not machine.float16_needs_xla
    assert machine.expect("mixed_float16")[0] == "slower" and "oneDNN off" in machine.expect("mixed_float16")[1]
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    assert hardware.reduced_precision([], {"avx512_fp16"}).onednn


def test_measured_verdicts_are_read_against_the_expectation():
    avx2 = hardware.reduced_precision([], {"avx2"})
    assert avx2.agrees("mixed_bfloat16", "slower") and not avx2.agrees("mixed_bfloat16", "faster")
    assert not avx2.agrees("mixed_bfloat16", "no measurable difference")
    zen4 = hardware.reduced_precision([], {"avx512_bf16"})
    assert zen4.agrees("mixed_bfloat16", "faster") and zen4.agrees("mixed_bfloat16", "no measurable difference")
    assert not zen4.agrees("mixed_bfloat16", "slower")
    t4 = hardware.reduced_precision([T4], set())
    assert t4.agrees("mixed_bfloat16", "slower") and not t4.agrees("mixed_bfloat16", "faster")
    with pytest.raises(ValueError, match="mixed_float16 or mixed_bfloat16"):
        avx2.expect("float32")


def test_the_summary_names_the_hardware_and_an_expectation_per_policy():
    text = str(hardware.reduced_precision([T4], {"avx512_bf16"}))
    assert text.startswith("GPU: NVIDIA T4 (compute capability 7.5); tensor cores for float16: yes")
    assert "CPU instructions for 16-bit floats: AVX-512 BF16" in text
    assert "mixed_float16 against float32, expected training speed: faster" in text
    assert "mixed_bfloat16 against float32, expected training speed: not faster" in text
    cpu = str(hardware.reduced_precision([], {"avx2"}))
    assert cpu.startswith("no GPU; CPU instructions for 16-bit floats: none") and "emulated" in cpu


def test_cpu_flags_that_the_os_does_not_list_are_not_known_not_absent():
    """macOS and Windows list no CPU flags: the summary said 'none' and 'this CPU has no bfloat16
    instructions' there, also on a Zen 4 laptop that has them."""
    unknown = hardware.reduced_precision([], set())
    assert not unknown.cpu_flags_known and hardware.reduced_precision([], {"avx2"}).cpu_flags_known
    for policy in ("mixed_float16", "mixed_bfloat16"):
        verdict, why = unknown.expect(policy)
        assert verdict == "likely slower" and "not known" in why and "has no" not in why
        assert unknown.agrees(policy, "slower") and not unknown.agrees(policy, "faster")
    assert "Zen 4" in unknown.expect("mixed_bfloat16")[1]
    assert str(unknown).startswith("no GPU; CPU instructions for 16-bit floats: not known")
    assert expected([T4]) == {"mixed_float16": "faster", "mixed_bfloat16": "not faster"}  # a GPU decides alone


def test_the_cpu_is_named_on_macos_and_windows_too(monkeypatch):
    """platform.processor() says 'arm' on an Apple M2 and 'Intel64 Family 6 Model 140 ...' on Windows."""
    import subprocess
    import sys
    import types

    monkeypatch.setattr("builtins.open", lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError("/proc/cpuinfo")))
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout="Apple M2\n"))
    assert hardware.cpu_model() == "Apple M2"
    monkeypatch.setattr(sys, "platform", "win32")
    opened = type("Key", (), {"__enter__": lambda self: self, "__exit__": lambda self, *exc: None})
    winreg = types.SimpleNamespace(HKEY_LOCAL_MACHINE=object(), OpenKey=lambda root, path: opened(),
                                   QueryValueEx=lambda key, name: ("11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz ", 1))
    monkeypatch.setitem(sys.modules, "winreg", winreg)
    assert hardware.cpu_model() == "11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz"
    monkeypatch.setattr(sys, "platform", "freebsd14")
    assert hardware.cpu_model()  # platform's answer, never empty


def test_this_machine_is_read_from_tensorflow_and_proc(monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu0"] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: dict(A100))
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2"})
    machine = hardware.reduced_precision()
    assert machine.gpus == (("NVIDIA A100-SXM4-40GB", (8, 0)),) and machine.cpu_flags == frozenset({"avx2"})
