"""What a measurement ran on: the machine and the library versions."""
from __future__ import annotations

import functools
import os
import platform
from importlib import metadata


def cpu_threads() -> int:
    """CPU cores this process may run on (the thread count measurements use)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's marketing name, as the OS reports it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    """One line naming the hardware, e.g. 'AMD EPYC 9454 (2 threads), 23 GiB RAM, no GPU'."""
    mem = memory_gib()
    gpus = gpu_names()
    parts = [f"{cpu_model()} ({cpu_threads()} threads)"]
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
