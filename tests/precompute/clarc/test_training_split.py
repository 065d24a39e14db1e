"""A correction never trains on the run's validation images (``run --val-data``; the test demo has them)."""
import numpy as np

from precompute.clarc.unhans import training_set
from precompute.store import RunStore


def test_training_set_leaves_out_validation_images(demo_run):
    store = RunStore(demo_run)
    cid = store.id_for_name("star")
    split = store.arrays(cid)["split"]
    validation = int(np.flatnonzero(split == 1)[0])
    chosen = [0, 1, validation]
    data = training_set(store, cid, chosen, subset=2, seed=0)
    counts = [int((store.arrays(c)["split"] == 0).sum()) for c in data.class_ids]
    assert len(data.labels) == sum(counts) and counts[0] < store.summary(cid)["n"]
    assert int(data.carries_artifact.sum()) == 2  # the validation image of the selection is not among them
