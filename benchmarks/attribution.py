"""Heatmaps per second on VGG-16: zennit, the fast LRP path, a forward pass, a forward + backward.

Usage::

    python benchmarks/attribution.py                       # CPU: batches 1, 4, 16; GPU: 16, 64, 256
    python benchmarks/attribution.py --batch-sizes 1,4 --repeats 7
    python benchmarks/attribution.py --device cuda --precision tf32   # also: agreement with fp32

The model is torchvision's VGG-16 with random weights (nothing is downloaded) at
224 x 224. Methods, each timed with the same images, interleaved round-robin so
that load from other processes hits them alike, as the median of ``--repeats``:

* ``forward``: ``model(x)`` without gradients;
* ``forward+backward``: ``model(x)`` and the gradient of the target logits w.r.t. ``x``;
* ``zennit``: zennit's composite registered on the model (its hooks), relevance at ``x``;
* ``fast``: the production path, ``Attributor(backend="fast")`` (normalisation and
  copies to numpy included).

Cost is given in forward passes per heatmap (time / forward time at the same batch
size), from wall-clock time and, on the CPU, also from this process's CPU time,
which load from other processes on a shared machine disturbs much less. The relative L2 error of the fast path against zennit is measured in fp32,
per heatmap, and the largest is reported. On CUDA, ``--precision tf32|bf16`` also
times the fast path in that precision and measures its agreement with fp32 as the
overlap of the k-nearest-neighbour graphs (k = 10) of 256 heatmaps of one class-like
set, the graph SpRAy clusters. The last line is a ``key=value`` summary.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch
import torchvision

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from precompute.errors import SprayError  # noqa: E402
from precompute.lrp import COMPOSITES, Attributor, relative_l2  # noqa: E402
from precompute.models import canonizers_for, input_bounds, make_merged_batchnorm_exact, normalize  # noqa: E402

SIZE = 224
NUM_CLASSES = 1000
KNN_K = 10
KNN_SET = 256


def cpu_name() -> str:
    """The CPU model as the kernel names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line(device: torch.device) -> str:
    """One line naming the CPU, the cores, the software and the device."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = (f"machine: {cpu_name()}, {available} CPU cores available ({os.cpu_count()} in the machine), "
            f"{torch.get_num_threads()} torch threads; torch {torch.__version__}, torchvision "
            f"{torchvision.__version__}; device {device}")
    if device.type == "cuda":
        text += f" ({torch.cuda.get_device_name(device)})"
    return text


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_vgg16(device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None, num_classes=NUM_CLASSES).eval().to(device)


class ZennitAsIs:
    """zennit's own composite registered once on the model; relevance at the normalised input.

    Parameters
    ----------
    model : torch.nn.Module
    composite : str
        A name in :data:`precompute.lrp.COMPOSITES`.
    device : torch.device
    """

    def __init__(self, model, composite: str, device: torch.device):
        low, high = input_bounds("imagenet")
        self.model = model
        self.composite = COMPOSITES.get(composite)(canonizers_for(model), low.to(device), high.to(device))

    def __enter__(self):
        self.composite.register(self.model)
        make_merged_batchnorm_exact(self.composite.handles)
        return self

    def __exit__(self, *exc_info):
        self.composite.remove()
        return False

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
        """Heatmaps (B, H, W) as a numpy array, for images (B, 3, H, W) in [0, 1]."""
        inputs = normalize(images, "imagenet").requires_grad_(True)
        output = self.model(inputs)
        one_hot = torch.nn.functional.one_hot(targets, output.shape[1]).to(output.dtype)
        (relevance,) = torch.autograd.grad(output, inputs, grad_outputs=output.detach() * one_hot)
        for hook in list(self.composite.hook_refs):  # keep memory flat over the repeats
            hook.stored_tensors.clear()
            hook.tensor_handles.remove()
        return relevance.sum(dim=1).detach().float().cpu().numpy()


def plain_forward(model) -> Callable:
    def run(images, targets):
        with torch.no_grad():
            return model(normalize(images, "imagenet"))
    return run


def forward_backward(model) -> Callable:
    def run(images, targets):
        inputs = normalize(images, "imagenet").requires_grad_(True)
        output = model(inputs)
        one_hot = torch.nn.functional.one_hot(targets, output.shape[1]).to(output.dtype)
        return torch.autograd.grad(output, inputs, grad_outputs=one_hot)[0]
    return run


def time_methods(methods: Dict[str, Callable], images, targets, repeats: int, device) -> Dict[str, Dict[str, float]]:
    """Median wall-clock and process-CPU seconds per call of each method.

    One warm-up call each, then ``repeats`` rounds calling the methods in turn, so
    that load from other processes falls on all of them alike. CPU time (all
    threads of this process) is barely touched by other processes on a shared
    machine; on CUDA it means nothing and only wall-clock time is used.
    """
    for method in methods.values():
        method(images, targets)
    synchronize(device)
    wall: Dict[str, List[float]] = {name: [] for name in methods}
    cpu: Dict[str, List[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, method in methods.items():
            synchronize(device)
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            method(images, targets)
            synchronize(device)
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
    return {"wall": {name: statistics.median(values) for name, values in wall.items()},
            "cpu": {name: statistics.median(values) for name, values in cpu.items()}}


def class_like_set(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` images in [0, 1]: eight smooth prototypes with per-image noise, like one class."""
    prototypes = torch.rand(8, 3, 7, 7, generator=generator)
    prototypes = torch.nn.functional.interpolate(prototypes, size=(size, size), mode="bilinear", align_corners=False)
    noise = 0.15 * torch.randn(count, 3, size, size, generator=generator)
    return (prototypes[torch.arange(count) % 8] + noise).clamp(0, 1)


def knn_graph_overlap(reference: np.ndarray, estimate: np.ndarray, k: int = KNN_K) -> float:
    """Mean fraction of each heatmap's k nearest neighbours (Euclidean) that both sets share.

    Parameters
    ----------
    reference, estimate : ndarray of shape (N, H, W)
        The same N heatmaps computed two ways.
    k : int

    Returns
    -------
    float
        1.0 when the kNN graphs are identical.
    """
    def neighbours(maps):
        flat = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float64)).flatten(1)
        distances = torch.cdist(flat, flat)
        distances.fill_diagonal_(float("inf"))
        return distances.topk(k, largest=False).indices

    first, second = neighbours(reference), neighbours(estimate)
    shared = (first[:, :, None] == second[:, None, :]).any(dim=2)
    return float(shared.float().mean())


def _precision_report(model, args, device, batch_size: int, summary: dict) -> None:
    """Time the fast path in ``args.precision`` and compare its kNN graph with fp32's (CUDA only)."""
    generator = torch.Generator().manual_seed(1)
    images = class_like_set(KNN_SET, SIZE, generator).to(device)
    targets = torch.zeros(KNN_SET, dtype=torch.int64, device=device)  # one class explained
    maps, seconds = {}, {}
    for precision in ("fp32", args.precision):
        with Attributor(model, composite=args.composite, device=device, backend="fast", precision=precision,
                        batch_size=batch_size) as attributor:
            maps[precision] = attributor.attribute(images, targets).heatmaps  # also the warm-up
            times = []
            for _ in range(args.repeats):
                synchronize(device)
                start = time.perf_counter()
                attributor.attribute(images, targets)
                synchronize(device)
                times.append(time.perf_counter() - start)
            seconds[precision] = statistics.median(times)
    overlap = knn_graph_overlap(maps["fp32"], maps[args.precision])
    errors = [relative_l2(maps[args.precision][i], maps["fp32"][i]) for i in range(KNN_SET)]
    for precision in ("fp32", args.precision):
        print(f"fast path, {precision}: {KNN_SET / seconds[precision]:.1f} heatmaps/s "
              f"({KNN_SET} images in batches of {batch_size})")
    print(f"{args.precision} vs fp32 on {KNN_SET} heatmaps of one class-like set: kNN-graph overlap "
          f"(k={KNN_K}) {overlap:.4f}, median relative L2 {statistics.median(errors):.2e}")
    summary.update(precision=args.precision, heatmaps_per_s_precision=f"{KNN_SET / seconds[args.precision]:.1f}",
                   knn_overlap=f"{overlap:.4f}", rel_l2_precision=f"{statistics.median(errors):.2e}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated (default 1,4,16 on CPU, 16,64,256 on CUDA)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per method and batch size (median)")
    parser.add_argument("--composite", default="epsilon_plus_flat")
    parser.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32",
                        help="CUDA only: also time the fast path in this precision and measure its agreement")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if args.precision != "fp32" and device.type != "cuda":
        print(f"error: --precision {args.precision} needs a CUDA device; this run is on {device}", file=sys.stderr)
        return 2
    batch_sizes = [int(text) for text in (args.batch_sizes or ("16,64,256" if device.type == "cuda" else "1,4,16"))
                   .split(",")]
    # One copy of the model per method: zennit's hooks and the fast path each stay registered
    # on their own copy, so the methods can be timed interleaved.
    model = build_vgg16(device)
    print(machine_line(device))
    print(f"model: torchvision vgg16, random weights, {NUM_CLASSES} classes, {SIZE}x{SIZE}; composite "
          f"{args.composite}; fp32 (TF32 off); median of {args.repeats} interleaved repeats")
    on_cpu = device.type == "cpu"
    print(f"{'batch':>5}  {'method':<17}{'s/batch':>9}{'heatmaps/s':>12}{'fwd passes/map':>16}{'vs zennit':>11}"
          + (f"{'cpu-time fwd passes':>21}" if on_cpu else ""))

    generator = torch.Generator().manual_seed(0)
    summary: dict = {}
    try:
        with contextlib.ExitStack() as stack:
            fast = stack.enter_context(Attributor(copy.deepcopy(model), composite=args.composite, device=device,
                                                  backend="fast"))
            zennit = stack.enter_context(ZennitAsIs(copy.deepcopy(model), args.composite, device))
            if device.type == "cuda":  # the Attributor turned TF32 off; the baselines run the same way
                assert not torch.backends.cudnn.allow_tf32
            methods = {
                "forward": plain_forward(model),
                "forward+backward": forward_backward(model),
                "zennit": zennit,
                "fast": lambda images, targets: fast.attribute(images, targets).heatmaps,
            }
            for batch in batch_sizes:
                images = torch.rand(batch, 3, SIZE, SIZE, generator=generator).to(device)
                targets = torch.randint(0, NUM_CLASSES, (batch,), generator=generator).to(device)
                timings = time_methods(methods, images, targets, args.repeats, device)
                seconds, cpu_seconds = timings["wall"], timings["cpu"]
                for name in methods:
                    print(f"{batch:>5}  {name:<17}{seconds[name]:>9.3f}{batch / seconds[name]:>12.2f}"
                          f"{seconds[name] / seconds['forward']:>16.2f}"
                          f"{seconds['zennit'] / seconds[name]:>10.2f}x"
                          + (f"{cpu_seconds[name] / cpu_seconds['forward']:>21.2f}" if on_cpu else ""))
                fast_maps, zennit_maps = methods["fast"](images, targets), zennit(images, targets)
                error = max(relative_l2(fast_maps[i], zennit_maps[i]) for i in range(batch))
                print(f"{batch:>5}  relative L2 error of fast vs zennit (fp32, largest of {batch}): {error:.2e}")
                summary = {"batch": batch, "seconds": seconds, "cpu_seconds": cpu_seconds, "error": error}
        if args.precision != "fp32":
            _precision_report(model, args, device, batch_sizes[-1], summary)
    except SprayError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    seconds = summary["seconds"]
    pairs = [
        ("device", device.type), ("batch", summary["batch"]),
        ("forward_passes_fast", f"{seconds['fast'] / seconds['forward']:.2f}"),
        ("forward_passes_zennit", f"{seconds['zennit'] / seconds['forward']:.2f}"),
        ("speedup", f"{seconds['zennit'] / seconds['fast']:.2f}"),
        ("rel_l2", f"{summary['error']:.2e}"),
        ("heatmaps_per_s_fast", f"{summary['batch'] / seconds['fast']:.2f}"),
    ]
    if device.type == "cpu":
        cpu_seconds = summary["cpu_seconds"]
        pairs += [("cpu_forward_passes_fast", f"{cpu_seconds['fast'] / cpu_seconds['forward']:.2f}"),
                  ("cpu_forward_passes_zennit", f"{cpu_seconds['zennit'] / cpu_seconds['forward']:.2f}")]
    pairs += [(key, summary[key]) for key in ("precision", "heatmaps_per_s_precision", "knn_overlap",
                                               "rel_l2_precision") if key in summary]
    print(" ".join(f"{key}={value}" for key, value in pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
