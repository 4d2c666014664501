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
    cpu = str(hardware.reduced_precision([], set()))
    assert cpu.startswith("no GPU; CPU instructions for 16-bit floats: none") and "emulated" in cpu


def test_this_machine_is_read_from_tensorflow_and_proc(monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu0"] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: dict(A100))
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2"})
    machine = hardware.reduced_precision()
    assert machine.gpus == (("NVIDIA A100-SXM4-40GB", (8, 0)),) and machine.cpu_flags == frozenset({"avx2"})
