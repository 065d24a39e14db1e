"""What the benchmarks print about the machine they ran on, and small statistics they share.

Imported by the benchmark scripts of this folder (``python benchmarks/<script>.py`` puts
this folder on ``sys.path``).
"""
from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path
from typing import Iterable, Tuple

__all__ = ["machine", "load_average", "cpu_jiffies", "versions", "median"]


def machine() -> str:
    """CPU model, logical and usable cores, operating system."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or model
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {os.cpu_count()} logical cores ({usable} usable), {platform.system()} {platform.release()}"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, or ``n/a``."""
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def cpu_jiffies() -> Tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (Linux /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return (0, 0)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle, sum(fields[:8]))


def versions(packages: Iterable[str]) -> str:
    """``python X, pkg Y, ...`` for the given distribution names."""
    from importlib import metadata

    parts = [f"python {platform.python_version()}"]
    for package in packages:
        try:
            parts.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{package} (not installed)")
    return ", ".join(parts)


def median(values) -> float:
    """Median of ``values``; NaN for none."""
    values = list(values)
    return statistics.median(values) if values else float("nan")
