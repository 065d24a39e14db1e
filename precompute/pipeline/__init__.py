"""Run the pipeline over a dataset, class by class, into a run store.

:func:`run` hands a :class:`RunConfig` to the engine it names (:data:`ENGINES`):

* ``local`` (:mod:`precompute.pipeline.local`): everything in this process;
* ``ray`` (:mod:`precompute.pipeline.ray`): attribution on every GPU of a Ray
  cluster, analyses as Ray tasks. Ray is imported only when this engine runs.

Both run the same stages (:mod:`precompute.pipeline.stages` and
:mod:`precompute.pipeline.attribution`) and write the same store. Modules:

==============  =====================================================================
``config``      :class:`RunConfig` and the :data:`ENGINES` registry; no heavy import
``manifest``    the manifest of a new run, software versions, file hashes
``attribution`` the class loader, :class:`ClassBuffer` and the attribution of whole classes
``stages``      prepare, finish, write and finalise a class or a run
``local``       the ``local`` engine
``ray``         the ``ray`` engine (imports the stages, nothing of ``local``)
==============  =====================================================================
"""
from __future__ import annotations

from typing import Any, Callable, Dict

from ..errors import ConfigError
from ..progress import bar_safe, warnings_to
from .attribution import attribute_images
from .config import ENGINES, RunConfig
from .local import run_local
from .manifest import file_sha256, software_versions

__all__ = ["RunConfig", "ENGINES", "run", "run_local", "run_ray", "software_versions", "file_sha256",
           "attribute_images"]

ENGINES.register("local")(run_local)


@ENGINES.register("ray")
def run_ray(config: RunConfig, *, progress: bool = True, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run attribution on every GPU of a Ray cluster and the analyses as Ray tasks.

    See :func:`precompute.pipeline.ray.run_ray`; Ray is imported only here.

    Raises
    ------
    ConfigError
        If Ray is not installed.
    """
    try:
        from .ray import run_ray as run_on_ray
    except ModuleNotFoundError as error:
        if error.name != "ray" and not str(error.name).startswith("ray."):
            raise
        raise ConfigError("--engine ray needs Ray: pip install ray==2.60.0") from None
    log = bar_safe(log)
    with warnings_to(log):
        return run_on_ray(config, progress=progress, log=log)


def run(config: RunConfig, *, progress: bool = True, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the pipeline with the engine named in ``config.engine``.

    Parameters
    ----------
    config : RunConfig
    progress : bool
        Show progress bars.
    log : callable
        Receives one line per skipped file or class, and what the run is doing.

    Returns
    -------
    dict
        The run report (also written to ``report.json``).
    """
    return ENGINES.get(config.engine)(config, progress=progress, log=log)
