"""FID, IS, precision/recall and KID on inputs with known answers (numpy only)."""
import os
import warnings

import numpy as np
import pytest
from scipy import linalg

from ppddpm.evaluate.metrics.fid import MetricError, feature_statistics, frechet_distance
from ppddpm.evaluate.metrics.inception_score import inception_score, inception_score_from_probs
from ppddpm.evaluate.metrics.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel
from ppddpm.evaluate.metrics.precision_recall import in_manifold, knn_radii, precision_recall

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


# -- FID -------------------------------------------------------------------------------
def test_fid_of_identical_statistics_is_zero():
    rs = np.random.RandomState(0)
    a = rs.standard_normal((300, 12)) @ rs.standard_normal((12, 12))
    mu, sigma = feature_statistics(a)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_fid_mean_shift_with_identity_covariance_is_squared_norm():
    m = np.array([1.0, -2.0, 0.5, 3.0])
    eye = np.eye(4)
    assert frechet_distance(np.zeros(4), eye, m, eye) == pytest.approx(m @ m, abs=1e-10)


def test_fid_commuting_covariances_closed_form():
    # Diagonal (hence commuting) covariances in a shared rotated basis:
    # Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum_i (sqrt(a_i) - sqrt(b_i))^2.
    rs = np.random.RandomState(1)
    q, _ = np.linalg.qr(rs.standard_normal((6, 6)))
    a, b = rs.uniform(0.1, 4, 6), rs.uniform(0.1, 4, 6)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu1, mu2 = rs.standard_normal(6), rs.standard_normal(6)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9)


def test_fid_one_dimensional_gaussians():
    # W2^2(N(m1, s1^2), N(m2, s2^2)) = (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([1.0], [[4.0]], [-0.5], [[0.25]]) == pytest.approx(1.5 ** 2 + 1.5 ** 2)


def test_fid_statistics_are_float64_with_unbiased_covariance():
    x = np.array([[0, 0], [2, 0], [0, 4]], dtype=np.float32)
    mu, sigma = feature_statistics(x)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, [2 / 3, 4 / 3])
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False))
    with pytest.raises(MetricError, match="at least 2"):
        feature_statistics(x[:1])


@pytest.mark.parametrize("case", ["full", "singular"])
def test_fid_matches_pytorch_fid(case):
    ref = np.load(os.path.join(FIXTURES, "inception_parity.npz"))
    x, y = ref[f"fid_{case}_x"], ref[f"fid_{case}_y"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = frechet_distance(*feature_statistics(x), *feature_statistics(y))
    assert got == pytest.approx(float(ref[f"fid_{case}_value"]), rel=1e-6)


def test_fid_singular_product_adds_eps_like_pytorch_fid(monkeypatch):
    # Force sqrtm to fail once: the offset path must run, warn, and give the eps answer.
    import ppddpm.evaluate.metrics.fid as fid
    calls = []
    real_sqrtm = linalg.sqrtm

    def fake_sqrtm(m, disp=True):
        calls.append(m.copy())
        if len(calls) == 1:
            return np.full_like(m, np.inf), 1.0
        return real_sqrtm(m)
    monkeypatch.setattr(fid.linalg, "sqrtm", fake_sqrtm)
    s = np.diag([1.0, 2.0])
    with pytest.warns(RuntimeWarning, match="singular"):
        got = fid.frechet_distance(np.zeros(2), s, np.zeros(2), 4 * s, eps=1e-6)
    np.testing.assert_allclose(calls[1], (s + 1e-6 * np.eye(2)) @ (4 * s + 1e-6 * np.eye(2)))
    d = np.diag(s)
    want = np.sum(d + 4 * d - 2 * np.sqrt((d + 1e-6) * (4 * d + 1e-6)))
    assert got == pytest.approx(want, rel=1e-9)


def test_fid_large_imaginary_part_is_an_error_small_one_is_dropped(monkeypatch):
    import ppddpm.evaluate.metrics.fid as fid
    eye = np.eye(2)
    monkeypatch.setattr(fid.linalg, "sqrtm", lambda m, disp=True: (eye + 1e-6j, 0.0))
    assert fid.frechet_distance(np.zeros(2), eye, np.zeros(2), eye) == pytest.approx(0.0, abs=1e-12)
    monkeypatch.setattr(fid.linalg, "sqrtm", lambda m, disp=True: (eye + 0.5j, 0.0))
    with pytest.raises(MetricError, match="imaginary component"):
        fid.frechet_distance(np.zeros(2), eye, np.zeros(2), eye)


def test_fid_refuses_mismatched_statistics():
    with pytest.raises(MetricError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# -- Inception Score ------------------------------------------------------------------
def test_is_of_confident_uniform_classes_is_the_class_count():
    # Each image is certain of one class; every split holds each of C classes equally:
    # p(y) is uniform, KL = log C for every image, IS = C exactly.
    C, splits = 5, 10
    labels = np.tile(np.arange(C), 10 * splits // C)
    probs = np.eye(C)[labels]
    mean, std = inception_score_from_probs(probs, splits=splits)
    assert mean == pytest.approx(C, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_is_of_identical_predictions_is_one():
    logits = np.tile(np.random.RandomState(0).standard_normal(1008), (40, 1))
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_is_against_direct_formula_with_per_split_std():
    rs = np.random.RandomState(3)
    logits = rs.standard_normal((50, 7)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for k in range(5):                       # splits are consecutive blocks of 10
        part = p[10 * k:10 * k + 10]
        py = part.mean(0)
        scores.append(np.exp(np.mean([np.sum(r * np.log(r / py)) for r in part])))
    mean, std = inception_score(logits, splits=5)
    assert mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert std == pytest.approx(np.std(scores), rel=1e-10)   # population std, as the original


def test_is_with_half_and_half_classes():
    # Two equally likely confident classes per split: IS = 2; softmax of big logits.
    logits = np.zeros((20, 1008))
    logits[np.arange(20), np.arange(20) % 2] = 60.0
    assert inception_score(logits, splits=10)[0] == pytest.approx(2.0, rel=1e-9)


def test_is_needs_a_few_images_per_split():
    with pytest.raises(MetricError, match="at least 10"):
        inception_score(np.zeros((9, 4)), splits=10)


# -- precision / recall -----------------------------------------------------------------
def _clusters(n_clusters, per, dim=8, spread=1.0, seed=0):
    rs = np.random.RandomState(seed)
    centres = np.eye(n_clusters, dim) * 100.0       # clusters 141 apart, ~4 wide
    return np.concatenate([c + spread * rs.standard_normal((per, dim)) for c in centres])


def test_precision_recall_identical_sets():
    x = np.random.RandomState(0).standard_normal((200, 16))
    assert precision_recall(x, x.copy()) == (1.0, 1.0)


def test_precision_recall_disjoint_far_sets():
    x = np.random.RandomState(0).standard_normal((100, 16))
    assert precision_recall(x, x + 1000.0) == (0.0, 0.0)


def test_precision_recall_subset_covers_half_of_the_modes():
    real = _clusters(8, 20)                          # 8 modes
    fake = real[:4 * 20]                             # exactly the points of 4 of them
    p, r = precision_recall(real, fake)
    assert p == 1.0 and r == 0.5


def test_precision_recall_blocks_do_not_change_the_answer():
    rs = np.random.RandomState(5)
    real, fake = rs.standard_normal((97, 6)), rs.standard_normal((83, 6)) * 1.3 + 0.2
    whole = precision_recall(real, fake)
    tiny_blocks = precision_recall(real, fake, block_bytes=4 * 97 * 7)   # 7 rows a block
    assert whole == tiny_blocks and 0 < whole[0] < 1 and 0 < whole[1] < 1


def test_knn_radius_is_third_neighbour_excluding_self():
    pts = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    # from 0: neighbours 1, 3, 6 away -> 3rd is 6 (squared 36); from 1: 1, 2, 5 -> 25;
    # from 10: 4, 7, 9 -> 81
    np.testing.assert_allclose(knn_radii(pts, k=3), [36, 25, 9, 25, 81])
    inside = in_manifold(np.array([[-6.0], [-6.1]]), pts, knn_radii(pts, 3))
    assert inside.tolist() == [True, False]          # ball boundary is inclusive (<=)


# -- KID ---------------------------------------------------------------------------------
def test_kid_mmd_matches_explicit_double_sum():
    rs = np.random.RandomState(2)
    x, y = rs.standard_normal((9, 5)), rs.standard_normal((7, 5)) + 0.5
    k = lambda a, b: (a @ b / 5 + 1) ** 3
    xx = sum(k(x[i], x[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    yy = sum(k(y[i], y[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    xy = sum(k(a, b) for a in x for b in y) / (9 * 7)
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    assert polynomial_kernel(x, y).shape == (9, 7)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rs = np.random.RandomState(4)
    a, b = rs.standard_normal((400, 32)), rs.standard_normal((400, 32))
    same, same_std = kernel_inception_distance(a, b, num_subsets=20, subset_size=200)
    far, _ = kernel_inception_distance(a, b + 1.0, num_subsets=20, subset_size=200)
    assert abs(same) < 3 * same_std + 1e-3
    assert far > 100 * abs(same) and far > 0.1
