"""The right-reason score: the decisive region and its overlap with the object."""
import numpy as np
import pytest

from precompute.right_reason import right_reason_scores, top_relevance_region


def test_the_decisive_region_is_the_fewest_pixels_holding_the_share():
    rng = np.random.default_rng(1)
    heatmaps = rng.normal(size=(6, 9, 9)).astype(np.float32)
    region = top_relevance_region(heatmaps, 0.8)
    for heatmap, chosen in zip(heatmaps, region):
        positive = np.maximum(heatmap, 0)
        held = positive[chosen].sum()
        assert held >= 0.8 * positive.sum() - 1e-5
        assert positive[chosen].min() >= positive[~chosen].max()  # the most relevant pixels
        assert held - positive[chosen].min() < 0.8 * positive.sum()  # one pixel fewer would not do


def test_scores_are_one_on_the_object_zero_off_it_and_nan_without_positive_relevance():
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:6, 2:6] = True
    heatmaps = np.zeros((3, 8, 8), np.float32)
    heatmaps[0, 3, 3] = heatmaps[0, 4, 4] = 1.0  # on the object
    heatmaps[1, 0, 0] = heatmaps[1, 7, 7] = 1.0  # off it
    heatmaps[2] = -1.0  # no positive relevance
    score, chance = right_reason_scores(heatmaps, masks)
    assert score[0] == 1.0 and score[1] == 0.0 and np.isnan(score[2])
    np.testing.assert_allclose(chance, 16 / 64)


def test_score_counts_pixels_of_the_region_not_their_relevance():
    masks = np.zeros((1, 4, 4), bool)
    masks[0, 0, :2] = True
    heatmaps = np.zeros((1, 4, 4), np.float32)
    heatmaps[0, 0, :2] = 1.0  # two object pixels
    heatmaps[0, 3, :2] = 1.0  # two background pixels, as relevant
    score, _ = right_reason_scores(heatmaps, masks, share=1.0)
    assert score[0] == pytest.approx(0.5)


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="differ in shape"):
        right_reason_scores(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), bool))
