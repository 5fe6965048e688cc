"""Torch threads per task: one, unless ``MCMIA_THREADS`` says otherwise. Two threads on a machine whose other
core is busy ran one small training 19× slower than one thread, and results are bit-identical only for one
machine type and one thread count, so the count is fixed and recorded in every entry's provenance."""
from __future__ import annotations

import os
import platform


def requested() -> int:
    raw = os.environ.get("MCMIA_THREADS", "1")
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"MCMIA_THREADS must be a whole number >= 1 (torch threads per task), got {raw!r}")
    return int(raw)


def configure() -> int:
    """Set torch's intra-op threads to ``requested()``; return the count."""
    import torch
    n = requested()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_gflops(n: int = 1024, seconds: float = 3.0, dtype: str = "float32") -> float:
    """This core's matmul rate at the current thread count, GFLOP/s (the median of repeated n×n products in
    ``dtype``): benchmarks print it beside their figures, since machines of this kind differ 2.5× in fp32, and
    more in bfloat16 (AMX units or none)."""
    import statistics
    import time

    import torch
    a, b = torch.randn(n, n, dtype=getattr(torch, dtype)), torch.randn(n, n, dtype=getattr(torch, dtype))
    rates, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        a @ b
        rates.append(2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return statistics.median(rates)
