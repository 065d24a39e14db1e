"""The perturbation scan: which image regions the model's certainty depends on, without heatmaps.

After the image-level perturbation check of ``shared/seeds/002``: occlude the regions of
a grid one at a time and record how much the probability of the true class drops. A
region off the object that matters a lot is a Clever-Hans suspect. This is a check on
the model alone, beside the LRP-based analysis; where they agree, the finding is firm.

``python -m precompute perturb RUN --classes a,b --grid 8`` stores per class
``classes/<id>/perturbation.npz`` (one map per sample) and the class's off-object
sensitivity in its summary (a leaderboard column in the app).

Modules
-------
occlusion  the maps: one grid of occlusions per image, batched through the model (torch)
summary    where the drop lies: each cell's cover by a reference region, off-object share (numpy)
scan       over a run's classes: progress, resume, the store (the CLI and tests use it)
"""
from .summary import OCCLUSION_FILL, cell_bounds, cell_cover, off_object_share

__all__ = ["OCCLUSION_FILL", "cell_bounds", "cell_cover", "off_object_share"]
