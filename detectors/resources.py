"""Time and peak-memory measurement around the scoring of one class, and the name of the device
measured (benchmarks print it above their tables).

Peak CPU memory is the process's peak resident set size (VmHWM). On Linux it is reset
before each measured block by writing 5 to /proc/self/clear_refs, so each class reports its
own peak; where that is not possible the lifetime peak (ru_maxrss) is reported and marked.
On cuda, torch's max_memory_allocated is reset and read the same way.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch


def _vmhwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter for this process; False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def lifetime_peak_rss_mib() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0


class Meter:
    """Accumulates score-only time over samples and the peak memory of the measured block."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0
        self.count = 0
        self.resettable = reset_peak_rss()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def time(self, fn, *args, count: int = 1):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t = time.perf_counter()
        out = fn(*args)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - t
        self.count += count
        return out

    def result(self) -> dict:
        hwm = _vmhwm_mib() if self.resettable else None
        out = {
            "ms_per_sample": 1000.0 * self.seconds / max(self.count, 1),
            "peak_rss_mib": hwm if hwm is not None else lifetime_peak_rss_mib(),
            "peak_rss_scope": "class" if hwm is not None else "process",
            "gpu_max_allocated_mib": None,
        }
        if self.device.type == "cuda":
            out["gpu_max_allocated_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return out


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def device_description(device) -> str:
    """'<GPU name> (cuda)' or '<CPU model>, N logical CPUs (cpu)' for a device spec ('auto', 'cpu', 'cuda:0')."""
    from anomalygen.detectors.base import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (cuda)"
    return f"{cpu_name()}, {os.cpu_count()} logical CPUs (cpu)"
