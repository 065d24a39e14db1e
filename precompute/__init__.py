"""SpRAy Studio's offline pipeline: LRP heatmaps, spectral analysis and the run store."""
import os

# OpenMP threads that spin while they wait turn a busy 2-core machine into a queue: the
# demo's training ran 5x slower with 2 spinning threads next to another process than
# with passive ones. libgomp reads this once, when torch loads, so it is set before any
# precompute module imports torch; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
