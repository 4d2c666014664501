"""What a measurement ran on: the machine and the library versions; what it offers for 16-bit floats."""
from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata


def cpu_threads() -> int:
    """CPU cores this process may run on (the thread count measurements use)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's marketing name, as the OS reports it: /proc/cpuinfo on Linux, sysctl on macOS
    ('Apple M2'), the registry on Windows; else what Python's platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _os_cpu_name() or platform.processor() or platform.machine()


def _os_cpu_name() -> str:
    """The CPU's name from macOS's sysctl or Windows's registry ('' elsewhere or when unreadable)."""
    try:
        if sys.platform == "darwin":
            done = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5)
            return done.stdout.strip() if done.returncode == 0 else ""
        if sys.platform == "win32":
            import winreg

            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0") as key:
                return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return ""


# x86 CPU flags (as /proc/cpuinfo names them) that decide how fast int8, bf16 and float32 kernels can be.
SIMD_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
              "avx512_bf16": "AVX-512 BF16", "amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16"}


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags the OS reports (Linux; an empty set elsewhere)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def simd_support(flags: set[str] | None = None) -> str:
    """Which vector instructions that matter for inference the CPU has and lacks, e.g.
    'has: AVX2; lacks: AVX-512, AVX-512 VNNI, ...'. VNNI and AMX are what make int8 (and bf16)
    matrix maths faster than float32 on x86; without them int8 mostly saves bytes."""
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return "unknown (the OS lists no CPU flags)"
    has = [label for flag, label in SIMD_FLAGS.items() if flag in flags]
    lacks = [label for flag, label in SIMD_FLAGS.items() if flag not in flags]
    return f"has: {', '.join(has) or 'none'}; lacks: {', '.join(lacks) or 'none'}"


def vector_instructions(flags: set[str] | None = None) -> str:
    """The widest x86 vector instructions and the extensions that speed up int8 and 16-bit
    arithmetic, in a few words: 'AVX2', 'AVX-512 with VNNI, BF16', 'AVX-512 with VNNI, BF16,
    FP16; AMX'. Two CPUs of one name can differ here, and with them every latency and training
    speed the lessons measure. Empty where the OS lists no x86 flags (an ARM CPU, macOS)."""
    flags = cpu_flags() if flags is None else flags
    if "avx512f" in flags:
        extras = [label for flag, label in (("avx512_vnni", "VNNI"), ("avx512_bf16", "BF16"), ("avx512_fp16", "FP16"))
                  if flag in flags]
        found = "AVX-512" + (f" with {', '.join(extras)}" if extras else "")
    elif "avx2" in flags:
        found = "AVX2" + (" with AVX-VNNI" if "avx_vnni" in flags else "")
    else:
        return ""
    return found + ("; AMX" if flags & {"amx_int8", "amx_bf16", "amx_fp16"} else "")


def vector_label(flags: set[str] | None = None) -> str:
    """`vector_instructions` as a part of a file name: 'avx2', 'avx-512-with-vnni-bf16'; 'other'
    where the OS lists no x86 flags. Benchmarks name their results by it, one file per CPU class."""
    return re.sub(r"[^a-z0-9]+", "-", vector_instructions(flags).lower()).strip("-") or "other"


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs NVML sees (empty without a driver)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no library, no driver, no GPU: all mean "no GPU" here
        return []
    try:
        names = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else name)
        return names
    finally:
        pynvml.nvmlShutdown()


def memory_gib() -> float | None:
    """Total RAM in GiB (Linux), else None."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


@functools.cache
def describe() -> str:
    """One line naming the hardware, e.g. 'AMD EPYC 9454 (2 threads; AVX-512 with VNNI, BF16),
    23 GiB RAM, no GPU'."""
    mem = memory_gib()
    gpus = gpu_names()
    vector = vector_instructions()
    parts = [f"{cpu_model()} ({cpu_threads()} threads{'; ' + vector if vector else ''})"]
    if mem:
        parts.append(f"{mem:.0f} GiB RAM")
    parts.append(", ".join(gpus) if gpus else "no GPU")
    return ", ".join(parts)


LIBRARIES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "numpy")


@functools.cache
def versions() -> dict[str, str]:
    """Python and the versions of the libraries that shape the numbers."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


# --------------------------------------------------------------------------- reduced precision

# x86 CPU flags that give float16 or bfloat16 arithmetic its own instructions (lesson 04).
REDUCED_FLAGS = {"avx512_bf16": "AVX-512 BF16", "amx_bf16": "AMX-BF16", "avx512_fp16": "AVX-512 FP16",
                 "amx_fp16": "AMX-FP16"}
FLOAT16_CPU_FLAGS = frozenset({"avx512_fp16", "amx_fp16"})  # x86 instructions for float16 arithmetic
TENSOR_CORES = (7, 0)  # NVIDIA compute capability from which tensor cores multiply float16
GPU_BFLOAT16 = (8, 0)  # ... and bfloat16 (Ampere)


# What a measured speed verdict (stats.Ratio.verdict with "slower"/"faster") may be for each expectation.
_AGREES = {"faster": {"faster"}, "slower": {"slower"}, "not faster": {"slower", "no measurable difference"},
           "possibly faster": {"faster", "no measurable difference"}, "likely slower": {"slower"}}
_UNKNOWN_FLAGS = "this OS lists no CPU flags (Linux does), so whether this CPU has {} instructions is not known"


@dataclass(frozen=True)
class ReducedPrecision:
    """What a machine offers for 16-bit floats, and what each Keras dtype policy should therefore do
    to training speed on it: `expect(policy)`."""

    gpus: tuple[tuple[str, tuple[int, int] | None], ...]  # (name, compute capability or None)
    cpu_flags: frozenset[str]
    onednn: bool = True  # TensorFlow's oneDNN CPU kernels on (its default on x86; TF_ENABLE_ONEDNN_OPTS=0: off)

    @property
    def float16_needs_xla(self) -> bool:
        """Whether float16 training needs XLA to be usable here: a CPU with float16 instructions,
        to which TensorFlow (2.21) hands float16 convolutions through oneDNN, whose float16 weight
        gradients are a reference kernel (a plain loop; lesson 04 measures it). XLA compiles the
        training step with its own kernels instead."""
        return not self.gpus and self.onednn and bool(self.cpu_flags & FLOAT16_CPU_FLAGS)

    @property
    def tensor_cores(self) -> bool:
        """Whether a GPU has tensor cores for float16 (compute capability 7.0 or more)."""
        return any(cc is not None and cc >= TENSOR_CORES for _, cc in self.gpus)

    @property
    def cpu_flags_known(self) -> bool:
        """Whether the OS listed the CPU's flags (Linux does; macOS and Windows list none here)."""
        return bool(self.cpu_flags)

    def expect(self, policy: str) -> tuple[str, str]:
        """What to expect of `policy`'s training speed against float32 here, and why: "faster",
        "possibly faster", "not faster", "slower", or "likely slower" where the CPU's flags are
        not known (most CPUs have no 16-bit float arithmetic)."""
        if policy not in ("mixed_float16", "mixed_bfloat16"):
            raise ValueError(f"policy must be mixed_float16 or mixed_bfloat16, got {policy!r}")
        kind = policy.removeprefix("mixed_")
        if self.gpus:
            capabilities = [cc for _, cc in self.gpus if cc is not None]
            best = max(capabilities, default=None)
            name = next((n for n, cc in self.gpus if cc == best), self.gpus[0][0])
            need = GPU_BFLOAT16 if kind == "bfloat16" else TENSOR_CORES
            if best is not None and best >= need:
                return "faster", (f"{name} (compute capability {best[0]}.{best[1]}) multiplies {kind} on its "
                                  "tensor cores, when the model keeps the GPU busy (wide layers, large batches, "
                                  "multiples of 8); a small model is bound by kernel launches and gains little")
            where = "" if best is None else f" (compute capability {best[0]}.{best[1]})"
            return "not faster", (f"{name}{where} has no tensor cores for {kind} (they need compute capability "
                                  f"{need[0]}.{need[1]}): {kind} may save memory, not time")
        if not self.cpu_flags_known:
            exception = ("a CPU with AVX-512 BF16, such as AMD's Zen 4, may train it as fast as float32 or faster"
                         if kind == "bfloat16" else "on a CPU with AVX-512 FP16, oneDNN's float16 weight gradients "
                         "are a reference kernel, far slower still")
            return "likely slower", (_UNKNOWN_FLAGS.format(kind) + f". Most CPUs have none and emulate {kind}, "
                                     f"converting to float32 and back; {exception}. The measurement decides")
        if kind == "bfloat16":
            if "amx_bf16" in self.cpu_flags:
                return "faster", "AMX-BF16 tiles multiply bfloat16 matrices, and oneDNN uses them"
            if "avx512_bf16" in self.cpu_flags:
                return "possibly faster", ("AVX-512 BF16 has bfloat16 dot-product instructions, and oneDNN uses "
                                           "them, but the conversions around them can eat the gain")
            return "slower", ("this CPU has no bfloat16 instructions: bfloat16 operations are emulated, "
                              "converted to float32 and back")
        if self.float16_needs_xla:
            return "slower", ("this CPU has float16 instructions, so TensorFlow hands float16 convolutions to "
                              "oneDNN, whose float16 weight gradients are a reference kernel, a plain loop: over 100x "
                              "slower than float32 training on an Intel Xeon with AVX-512 FP16 (TensorFlow 2.21). "
                              "Compiled by XLA (jit_compile=True) the step avoids it, and is still not faster")
        which = ("with oneDNN off, TensorFlow's own kernels do not use this CPU's float16 instructions"
                 if self.cpu_flags & FLOAT16_CPU_FLAGS else "this CPU has no float16 arithmetic")
        return "slower", f"{which}: TensorFlow emulates float16 operations, converting to float32 and back"

    def agrees(self, policy: str, verdict: str) -> bool:
        """Whether a measured speed verdict ("faster", "slower", "no measurable difference") is what
        `expect(policy)` expected."""
        return verdict in _AGREES[self.expect(policy)[0]]

    def __str__(self) -> str:
        if self.gpus:
            gpus = ", ".join(name + (f" (compute capability {cc[0]}.{cc[1]})" if cc else "") for name, cc in self.gpus)
            device = f"GPU: {gpus}; tensor cores for float16: {'yes' if self.tensor_cores else 'no'}"
        else:
            device = "no GPU"
        has = [label for flag, label in REDUCED_FLAGS.items() if flag in self.cpu_flags]
        found = (", ".join(has) or "none") if self.cpu_flags_known else "not known (the OS lists no CPU flags)"
        lines = [f"{device}; CPU instructions for 16-bit floats: {found}"]
        for policy in ("mixed_float16", "mixed_bfloat16"):
            verdict, why = self.expect(policy)
            lines.append(f"  {policy} against float32, expected training speed: {verdict} ({why})")
        return "\n".join(lines)


def reduced_precision(gpu_details: list[dict] | None = None, flags: set[str] | None = None) -> ReducedPrecision:
    """What this machine offers for float16 and bfloat16: its GPUs with their compute capability
    (`gpu_details`: what tf.config.experimental.get_device_details gives for each GPU, default:
    this machine's) and the CPU's flags (default: this CPU's)."""
    if gpu_details is None:
        import tensorflow as tf

        gpu_details = [tf.config.experimental.get_device_details(gpu) for gpu in tf.config.list_physical_devices("GPU")]
    gpus = tuple((d.get("device_name", "GPU"), tuple(d["compute_capability"]) if d.get("compute_capability") else None)
                 for d in gpu_details)
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")
    return ReducedPrecision(gpus, frozenset(cpu_flags() if flags is None else flags), onednn)
