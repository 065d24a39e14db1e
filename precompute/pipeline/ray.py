"""``--engine ray``: attribution on every GPU of a Ray cluster, per-class analyses as Ray tasks.

Where things run:

* **The driver** (the process that runs ``python -m precompute run``) checks the
  inputs, loads the model once and opens the store exactly as the local engine
  does (:func:`precompute.pipeline.stages.prepare`). It is the only writer: each analysed
  class is written atomically with :class:`precompute.store.RunWriter` as it
  arrives, so the store format and resuming are those of the local engine.
* **One attribution actor per GPU** (``num_gpus=1``); on a cluster without GPUs,
  CPU actors that take half of the CPUs. Each builds the model from its spec and
  the driver's state_dict, shipped once through the object store (the weights
  file need not exist on the workers), and explains whole classes with the
  loader, batches and attributor both engines use (:mod:`precompute.pipeline.attribution`).
* **One analysis task per class** (``num_cpus=1``) runs the analysis both engines
  use (:func:`precompute.pipeline.stages.finish_class`) on the float16 heatmaps,
  seeded by the config.

Classes go to idle actors through Ray's :class:`ray.util.ActorPool`; the driver
waits with ``ray.wait`` on whatever finishes first. At most
``actors + analysis CPUs`` classes (and never more than
``actors + MAX_ANALYSES``) are in flight at once: one ImageNet class's heatmaps
are about 130 MB.

The stored arrays and summaries equal the local engine's, except the timings.

Cluster: a session already started with ``ray.init(...)`` is reused and left
running. Otherwise ``ray.init()`` connects to ``RAY_ADDRESS`` if it is set
(``ray://head:10001`` through Ray Client, which needs ``ray[client]``; or
``head:6379`` from a node of the cluster), else to the cluster this machine
joined with ``ray start``, else starts Ray on this machine for the run. Every
node needs this project and its requirements installed, and the data folder
(and a ``file.py:function`` model file) at the same path.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import ray
from ray.util import ActorPool

from ..checks import split_model_spec
from ..data import ClassFiles
from ..errors import ConfigError, SprayError
from ..models import build_model, canonizers_for
from ..progress import progress_bar
from ..store import ClassAnalysis
from .attribution import attribute_classes, build_attributor, class_loader
from .config import RunConfig
from .stages import (finalise, finish_class, log_failures, prepare, readable_count, record_backend, safe_report,
                     write_class)

__all__ = ["run_ray", "MAX_ANALYSES"]

#: Most analysis tasks in flight at once, whatever the number of CPUs (memory).
MAX_ANALYSES = 16


@dataclass
class _Attributed:
    """What the driver needs of an attributed class; the heatmaps stay in the object store."""

    files: ClassFiles
    failures: List[Tuple[str, str]]
    readable: int
    backend: str


class _ClassAttributor:
    """A Ray actor: one model on one device, explaining whole classes.

    Parameters
    ----------
    config : RunConfig
    num_classes : int
    state : dict of str to torch.Tensor
        The driver's loaded state_dict (passed as an object reference).
    device : {"cpu", "cuda"}
        ``"cuda"`` is the actor's one GPU.
    root : Path
        Data root, the same path on every node.
    """

    def __init__(self, config: RunConfig, num_classes: int, state: Dict[str, Any], device: str, root: Path):
        self.config = config
        self.num_classes = num_classes
        self.state = state
        self.device = device
        self.root = root
        # Entered on the first class and held for the actor's life, as the local engine
        # holds it for the run (so "auto" checks its backend once).
        self._stack = contextlib.ExitStack()
        self._attributor = None

    def attribute(self, cls: ClassFiles):
        """Explain one class.

        Returns
        -------
        buffer : precompute.pipeline.attribution.ClassBuffer
            float16 heatmaps (n_files, H, W), logits and thumbnails.
        attributed : _Attributed
        """
        if self._attributor is None:
            self._attributor = self._stack.enter_context(self._open())
        loader = class_loader(self.root, [cls], self.config, self.device)
        [buffer] = attribute_classes(self._attributor, [cls], loader, self.config)
        return buffer, _Attributed(files=cls, failures=buffer.failures, readable=readable_count(buffer),
                                   backend=self._attributor.backend_)

    def _open(self):
        # Build + load_state_dict, not load_model: the weights file is on the driver only.
        model = build_model(self.config.model, self.num_classes)
        model.load_state_dict(self.state)
        self.state = None
        model.eval()
        return build_attributor(model, canonizers_for(model, self.config.model), self.config, self.device)


def _analyse(buffer, config: RunConfig, label_names: List[str]):
    """A Ray task: :func:`precompute.pipeline.stages.finish_class` of one attributed class (None: too few images)."""
    from ..stages.transport import process_limit

    with process_limit(1):  # the task has one CPU: the transport distances solve in it, not in a pool
        return finish_class(buffer, config, label_names)


class _Cluster:
    """The Ray session of one run: connects on first use and shuts down only what it started."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.started = False

    def connect(self) -> None:
        if ray.is_initialized():
            return
        address = os.environ.get("RAY_ADDRESS")
        if address:
            _check_reachable(address)
        try:
            # No address argument: ray.init() itself reads RAY_ADDRESS, then a local `ray start`.
            ray.init(include_dashboard=None if address else False, log_to_driver=True,
                     logging_level=logging.WARNING if self.quiet else logging.INFO)
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = f"at RAY_ADDRESS={address}" if address else "on this machine"
            # Ray puts the reason (refused, timed out, bad auth token) in the cause's last line.
            reason = [line for line in str(error.__cause__ or "").splitlines() if line.strip()]
            detail = f" ({reason[-1].strip()})" if reason else ""
            raise ConfigError(f"--engine ray: cannot start or reach a Ray cluster {where}: {error}{detail}") from None
        self.started = True

    def device(self, config: RunConfig) -> str:
        """``config.device`` resolved on the cluster: ``"cuda"`` if it has GPUs (``auto``)."""
        self.connect()
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if config.device == "cuda" and not gpus:
            raise ConfigError("--device cuda: the Ray cluster has no GPU")
        return "cuda" if config.device in ("auto", "cuda") and gpus else "cpu"

    def close(self) -> None:
        if self.started:
            ray.shutdown()


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a ``HOST:PORT`` or ``ray://HOST:PORT`` that nothing listens on.

    ``ray.init`` retries such an address for about ten minutes before it gives up.
    """
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local", ...: Ray resolves those itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConfigError(f"--engine ray: cannot reach the Ray cluster at RAY_ADDRESS={address} "
                          f"({error.strerror or error}); is the head node up, and is the port right?") from None


def _actor_plan(device: str) -> Tuple[int, Dict[str, Any], int]:
    """Number of attribution actors, their Ray options, and the CPUs left for analyses."""
    resources = ray.cluster_resources()
    cpus = int(resources.get("CPU", 0))
    if device == "cuda":
        gpus = int(resources.get("GPU", 0))
        per_actor = 1 if cpus > gpus else 0  # a CPU each for its loader, if that leaves some for analyses
        return gpus, {"num_gpus": 1, "num_cpus": per_actor}, cpus - per_actor * gpus
    # Half the CPUs attribute, in actors of up to 4; an actor that held every CPU would
    # starve the analysis tasks forever.
    per_actor = min(4, cpus // 2)
    actors = max(1, (cpus // 2) // per_actor) if per_actor else 1
    return actors, {"num_cpus": per_actor}, cpus - per_actor * actors


def _absolute_spec(spec: str) -> str:
    """``spec`` with the file of a ``file.py:function`` spec made absolute."""
    file_spec = split_model_spec(spec)
    return spec if file_spec is None else f"{file_spec[0].resolve()}:{file_spec[1]}"


def _get(ref):
    """``ray.get`` that raises a worker's user-facing error as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, SprayError):
            raise error.cause from None
        raise
    except ray.exceptions.RayActorError as error:
        raise SprayError(f"a Ray attribution actor died ({error}); finished classes are kept: run the "
                         "same command again to resume") from None


def run_ray(config: RunConfig, *, progress: bool = True, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run attribution and analysis on a Ray cluster (a local one by default).

    Parameters
    ----------
    config : RunConfig
        ``config.engine`` is ``"ray"``; ``config.device`` chooses GPU or CPU actors.
    progress : bool
        Show progress bars (updated as classes finish).
    log : callable
        Receives one line per skipped file or class.

    Returns
    -------
    dict
        The run report (also written to ``report.json``), as the local engine's.
    """
    cluster = _Cluster(quiet=not progress)
    actors: List[Any] = []
    try:
        job = prepare(config, log, resolve_device=cluster.device)
        writer, report = job.writer, job.report
        if job.todo:
            count, options, analysis_cpus = _actor_plan(job.device)
            state = ray.put({name: tensor.cpu() for name, tensor in job.model.state_dict().items()})
            actor_class = ray.remote(_ClassAttributor).options(**options)
            # Workers may run in another directory than this process: give them absolute paths.
            worker_config = dataclasses.replace(config, model=_absolute_spec(config.model))
            actors = [actor_class.remote(worker_config, job.num_classes, state, job.device,
                                         Path(job.index.root).resolve()) for _ in range(count)]
            in_flight = count + max(1, min(analysis_cpus, MAX_ANALYSES))
            _stream_classes(job, config, ActorPool(actors), in_flight, progress, log)
        finalise(writer, report, config=config, index=job.index, progress=progress, log=log)
        return report
    finally:
        for actor in actors:
            ray.kill(actor)
        cluster.close()


def _stream_classes(job, config: RunConfig, pool: ActorPool, in_flight: int, progress: bool,
                    log: Callable[[str], None]) -> None:
    """Attribute, analyse and write every class of ``job.todo``, as results arrive."""
    writer, report, label_names = job.writer, job.report, job.index.label_names
    analyse = ray.remote(num_cpus=1)(_analyse)
    queue = deque(job.todo)
    attributing: Dict[Any, Tuple[Any, Any]] = {}  # info ref -> (actor, heatmaps ref)
    analysing: Dict[Any, _Attributed] = {}  # analysis ref -> its class
    class_bar = progress_bar(total=len(job.todo), desc="classes", unit="class", disable=not progress, position=0)
    image_bar = progress_bar(total=sum(len(cls.paths) for cls in job.todo), desc="images", unit="img",
                             disable=not progress, position=1)
    while queue or attributing or analysing:
        while queue and pool.has_free() and len(attributing) + len(analysing) < in_flight:
            actor = pool.pop_idle()
            buffer_ref, info_ref = actor.attribute.options(num_returns=2).remote(queue.popleft())
            attributing[info_ref] = (actor, buffer_ref)
        class_bar.set_postfix_str(f"{len(attributing)} attributing, {len(analysing)} analysing")
        [ready], _ = ray.wait(list(attributing) + list(analysing), num_returns=1)
        if ready in attributing:
            actor, buffer_ref = attributing.pop(ready)
            pool.push(actor)
            attributed: _Attributed = _get(ready)
            record_backend(writer, attributed.backend)
            log_failures(attributed.failures, report, log)
            image_bar.update(len(attributed.files.paths))
            # The heatmaps go from the actor to the task through the object store, not through here.
            analysing[analyse.remote(buffer_ref, config, label_names)] = attributed
        else:
            attributed = analysing.pop(ready)
            analysis: Optional[ClassAnalysis] = _get(ready)
            write_class(writer, attributed.files, analysis, attributed.readable, config, report, log)
            safe_report(writer, report)
            class_bar.update(1)
    class_bar.set_postfix_str("")
    class_bar.close()
    image_bar.close()
