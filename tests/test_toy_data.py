"""The 2-D toy data sets: seeded, inside [-1, 1]^2, shaped as described, reachable by name."""
import math

import numpy as np
import pytest

from ppddpm.config import DataConfig
from ppddpm.data import build_dataset, build_loader
from ppddpm.data.toy import TOY_DATASETS, ToyDataset, mixture_spec, sample_toy
from ppddpm.errors import DatasetError


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_points_are_a_pure_function_of_the_seed_and_split(name):
    a, la = sample_toy(name, 3000, seed=3)
    b, lb = sample_toy(name, 3000, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert a.dtype == np.float32 and a.shape == (3000, 2) and la.dtype == np.int64
    assert not np.array_equal(a, sample_toy(name, 3000, seed=4)[0])
    assert not np.array_equal(a, sample_toy(name, 3000, seed=3, split="eval")[0])
    # inside the data range the samplers clip x0 to (a Gaussian tail may rarely leave it)
    assert np.mean(np.abs(a) <= 1.0) > 0.999 and np.abs(a).max() < 1.1


def _nearest_distance(points, curve):
    out = []
    for chunk in np.array_split(points, 20):
        d = chunk[:, None, :] - curve[None, :, :]
        out.append(np.sqrt((d ** 2).sum(-1)).min(axis=1))
    return np.concatenate(out)


# The noiseless shapes, written independently of data/toy.py, and the noise std in the
# data's units: each set's points must lie around its curve at that distance.
CURVES = {
    "scurve": (lambda s: 0.45 * np.stack([np.sin(s), np.sign(s) * (np.cos(s) - 1)], 1),
               (-1.5 * math.pi, 1.5 * math.pi), 0.1 * 0.45),
    "swissroll": (lambda s: np.stack([s * np.cos(s), s * np.sin(s)], 1) / 15.0,
                  (1.5 * math.pi, 4.5 * math.pi), 0.3 / 15.0),
    "moons": (lambda s: 0.6 * (np.where(s[:, None] < math.pi,
                                        np.stack([np.cos(s), np.sin(s)], 1),
                                        np.stack([1 - np.cos(s - math.pi),
                                                  0.5 - np.sin(s - math.pi)], 1)) - [0.5, 0.25]),
              (0.0, 2 * math.pi), 0.05 * 0.6),
}


@pytest.mark.parametrize("name", sorted(CURVES))
def test_curve_sets_scatter_around_their_curve_with_the_stated_noise(name):
    f, (lo, hi), std = CURVES[name]
    curve = f(np.linspace(lo, hi, 10000))
    pts, _ = sample_toy(name, 2000, seed=0)
    dist = _nearest_distance(pts.astype(np.float64), curve)
    # Near a smooth curve only the noise's normal component counts: the distance is
    # half-normal, of mean s*sqrt(2/pi) (standard error here ~2%; curvature adds a little).
    assert dist.mean() == pytest.approx(std * math.sqrt(2 / math.pi), rel=0.1)


@pytest.mark.parametrize("name,k", [("gaussian8", 8), ("gaussian25", 25)])
def test_mixtures_have_their_stated_means_std_and_equal_weights(name, k):
    means, std = mixture_spec(name)
    assert means.shape == (k, 2) and std == pytest.approx(0.05 / 2.828)
    pts, labels = sample_toy(name, 20000, seed=1)
    counts = np.bincount(labels, minlength=k)
    assert np.all(np.abs(counts - 20000 / k) < 5 * math.sqrt(20000 / k))
    for j in range(k):
        mine = pts[labels == j].astype(np.float64)
        np.testing.assert_allclose(mine.mean(0), means[j], atol=5 * std / math.sqrt(len(mine)))
        assert mine.std(0) == pytest.approx([std, std], rel=0.1)
    if name == "gaussian8":
        np.testing.assert_allclose(np.linalg.norm(means, axis=1), 2 / 2.828)
    else:
        assert sorted(set(np.round(means[:, 0] * 2.828, 9))) == [-2, -1, 0, 1, 2]


def test_build_dataset_by_name_gives_2x1x1_points():
    ds = build_dataset(DataConfig(dataset="gaussian25"))
    assert isinstance(ds, ToyDataset) and len(ds) == 100_000
    x, y = ds[5]
    assert x.shape == (2, 1, 1) and x.dtype == np.float32 and 0 <= y < 25
    x2, _ = ds[(5, True)]           # the loader's (index, flip) keys: flips are ignored
    np.testing.assert_array_equal(x, x2)
    batch = next(iter(build_loader(ds, 64, seed=0)))
    assert batch[0].shape == [64, 2, 1, 1]
    with pytest.raises(DatasetError, match="gaussian25"):
        sample_toy("gaussian9", 10)
