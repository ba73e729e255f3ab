"""Quality figures for 2-D samples: sliced W1, energy distance, mode coverage and precision."""
import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from ppddpm.data.toy import mixture_spec, sample_toy
from ppddpm.toy.metrics import (TRUE_FRAC_3SIGMA, energy_distance, mode_stats, quality,
                              sliced_wasserstein)


def test_sliced_w1_in_one_dimension_is_exact_w1_for_any_sample_sizes():
    rng = np.random.default_rng(0)
    for n, m in ((40, 40), (37, 53), (5, 200)):
        a, b = rng.standard_normal((n, 1)), 2 * rng.standard_normal((m, 1)) + 1
        assert sliced_wasserstein(a, b) == pytest.approx(wasserstein_distance(a[:, 0], b[:, 0]),
                                                         rel=1e-12)


def test_sliced_w1_of_a_shift_is_its_mean_projected_length():
    # Shifting by v moves every projection by <v, theta>: SW1 = |v| E|cos| = 2|v|/pi in 2-D.
    rng = np.random.default_rng(1)
    a = rng.standard_normal((500, 2))
    v = np.array([0.3, -0.4])
    k = 4096
    se = 0.5 * math.sqrt(1 / 2 - 4 / math.pi ** 2) / math.sqrt(k)   # SE of |v||cos| over k angles
    assert sliced_wasserstein(a, a + v, num_projections=k) == pytest.approx(
        0.5 * 2 / math.pi, abs=4 * se)
    assert sliced_wasserstein(a, a.copy()) == 0.0


def _energy_brute(a, b):
    d = lambda x, y: math.dist(x, y)
    xy = sum(d(x, y) for x in a for y in b) / (len(a) * len(b))
    xx = sum(d(a[i], a[j]) for i in range(len(a)) for j in range(len(a)) if i != j)
    yy = sum(d(b[i], b[j]) for i in range(len(b)) for j in range(len(b)) if i != j)
    return 2 * xy - xx / (len(a) * (len(a) - 1)) - yy / (len(b) * (len(b) - 1))


def test_energy_distance_matches_its_definition():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((30, 2)), rng.standard_normal((20, 2)) + [1.0, 0.0]
    assert energy_distance(a, b) == pytest.approx(_energy_brute(a, b), rel=1e-10)
    # Two point masses |a - b| apart: the within-set distances vanish, D^2 = 2|a - b|.
    assert energy_distance(np.zeros((4, 2)), np.full((3, 2), [3.0, 4.0])) == pytest.approx(10.0)


def test_energy_distance_is_near_zero_for_one_distribution_and_not_for_two():
    same = energy_distance(sample_toy("moons", 1500, 0, "eval")[0],
                           sample_toy("moons", 1500, 1, "eval")[0])
    other = energy_distance(sample_toy("moons", 1500, 0, "eval")[0],
                            sample_toy("swissroll", 1500, 0, "eval")[0])
    assert abs(same) < 2e-3 and other > 20 * abs(same)


def _mixture_points(counts_inside, outside_per_mode=0):
    """Points at 2 sigma (inside) and 4 sigma (outside) from each gaussian25 mode."""
    means, std = mixture_spec("gaussian25")
    pts = []
    for k, c in enumerate(counts_inside):
        ang = np.linspace(0, 2 * np.pi, c + outside_per_mode, endpoint=False)
        r = np.r_[np.full(c, 2 * std), np.full(outside_per_mode, 4 * std)]
        pts.append(means[k] + np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1))
    return np.concatenate(pts)


def test_mode_stats_counts_precision_and_the_pacgan_coverage_rule():
    means, std = mixture_spec("gaussian25")
    s = mode_stats(_mixture_points([90] * 25, outside_per_mode=10), means, std)
    assert s["modes_total"] == 25 and s["modes_covered"] == 25
    assert s["frac_within_3sigma"] == pytest.approx(0.9)
    assert s["mode_counts"] == [90] * 25
    # n = 2500 points, 25 modes: a mode needs 20% of its expected 100, i.e. 20 good points.
    counts = [100] * 23 + [20, 19]
    pts = _mixture_points(counts)
    pad = np.full((2500 - len(pts), 2), 0.5 * (means[0] + means[1]))   # between two modes
    s = mode_stats(np.concatenate([pts, pad]), means, std)
    assert s["modes_covered"] == 24
    assert s["frac_within_3sigma"] == pytest.approx(sum(counts) / 2500)


def test_quality_of_fresh_true_points_reaches_the_chi2_bound():
    q = quality(sample_toy("gaussian25", 4000, seed=7, split="eval")[0], "gaussian25")
    se = math.sqrt(TRUE_FRAC_3SIGMA * (1 - TRUE_FRAC_3SIGMA) / 4000)
    assert abs(q["frac_within_3sigma"] - TRUE_FRAC_3SIGMA) < 4 * se
    assert q["modes_covered"] == 25 and q["sliced_w1"] < 0.03
    assert "modes_total" not in quality(sample_toy("scurve", 500, seed=3, split="eval")[0], "scurve")


def test_metrics_accept_image_shaped_points_and_reject_too_few():
    a = np.random.default_rng(4).standard_normal((50, 2))
    assert sliced_wasserstein(a.reshape(50, 2, 1, 1), a + 1) == sliced_wasserstein(a, a + 1)
    with pytest.raises(ValueError, match="at least 2 points"):
        energy_distance(a[:1], a)
