"""What the benchmarks print about the machine they ran on, and small statistics they share.

Imported by the benchmark scripts of this folder (``python benchmarks/<script>.py`` puts
this folder on ``sys.path``).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Tuple

__all__ = ["machine", "load_average", "cpu_jiffies", "versions", "median", "spawn_timed"]


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


def spawn_timed(argv_at: Callable[[float], List[str]], report_path: Path, env: Mapping[str, str]) -> Dict:
    """Run one benchmark side in a fresh interpreter and time it.

    Parameters
    ----------
    argv_at : callable
        ``spawned_at -> argv``: the command, given the monotonic clock at spawn (children
        report their start-up time against it).
    report_path : Path
        The JSON report the child writes.
    env : mapping
        The child's environment (thread limits).

    Returns
    -------
    dict
        The child's report, plus ``wall`` (s), ``cpu`` (the child's own user + system s),
        ``others`` (the share of the machine's CPU that other processes used meanwhile),
        ``maxrss_kb``, ``exit``, and ``error`` (the last output line) if it failed silently.
    """
    before = cpu_jiffies()
    spawned_at = time.monotonic()
    process = subprocess.Popen(argv_at(spawned_at), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(env))
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - spawned_at
    after = cpu_jiffies()
    output = process.stdout.read().decode(errors="replace")
    process.stdout.close()
    code = os.waitstatus_to_exitcode(status)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    if code != 0 and "error" not in report:
        report["error"] = (output.strip().splitlines()[-1:] or [f"exit status {code}"])[0]
    cpu = usage.ru_utime + usage.ru_stime
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = (after[0] - before[0]) / tick
    others = max(0.0, busy - cpu) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0
    report.update(wall=wall, cpu=cpu, others=others, maxrss_kb=usage.ru_maxrss, exit=code)
    return report
