import math

import numpy as np
import pytest

from ppddpm import get_beta_schedule
from ppddpm.diffusion.schedules import SCHEDULES, cosine_alpha_bar

NAMES = ["linear", "linear_scaled", "quad", "const", "jsd", "warmup10", "warmup50", "cosine",
         "sigmoid"]


def test_all_names_known():
    assert sorted(SCHEDULES) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("T", [1, 10, 1000])
def test_length_range_dtype(name, T):
    b = get_beta_schedule(name, T, 1e-4, 0.02)
    assert b.shape == (T,) and b.dtype == np.float64
    assert np.all(b > 0)
    # jsd ends at beta = 1 by definition (1/1); every other schedule stays below 1.
    assert np.all(b <= 1) if name == "jsd" else np.all(b < 1)


def test_formulas_at_points():
    T, b0, b1 = 1000, 1e-4, 0.02
    lin = get_beta_schedule("linear", T, b0, b1)
    assert lin[0] == pytest.approx(b0) and lin[-1] == pytest.approx(b1)
    assert lin[500] == pytest.approx(b0 + 500 * (b1 - b0) / 999)
    quad = get_beta_schedule("quad", T, b0, b1)
    assert quad[250] == pytest.approx((math.sqrt(b0) + 250 * (math.sqrt(b1) - math.sqrt(b0)) / 999) ** 2)
    assert np.all(get_beta_schedule("const", T, b0, b1) == b1)
    jsd = get_beta_schedule("jsd", T)
    assert jsd[0] == pytest.approx(1 / 1000) and jsd[998] == pytest.approx(1 / 2) and jsd[-1] == 1
    w10 = get_beta_schedule("warmup10", T, b0, b1)
    assert w10[0] == pytest.approx(b0) and w10[99] == pytest.approx(b1) and np.all(w10[100:] == b1)
    assert w10[50] == pytest.approx(b0 + 50 * (b1 - b0) / 99)
    w50 = get_beta_schedule("warmup50", T, b0, b1)
    assert w50[499] == pytest.approx(b1) and w50[250] == pytest.approx(b0 + 250 * (b1 - b0) / 499)
    sig = get_beta_schedule("sigmoid", T, b0, b1)
    x = -6 + 12 * 300 / 999
    assert sig[300] == pytest.approx(b0 + (b1 - b0) / (1 + math.exp(-x)))


def test_cosine_matches_improved_ddpm_eq17():
    T, s = 1000, 0.008
    betas = get_beta_schedule("cosine", T)
    abar = np.cumprod(1 - betas)
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    for t in (0, 1, 100, 500, 900):
        # alpha_bar after step t (1-based t+1) is f(t+1)/f(0), eq. 17.
        assert abar[t] == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert betas.max() == pytest.approx(0.999)  # clipped at the end (sec. 3.2)
    assert cosine_alpha_bar(0.0) == pytest.approx(1.0)


def test_unknown_name_lists_known():
    with pytest.raises(ValueError) as err:
        get_beta_schedule("cosin", 10)
    for name in NAMES:
        assert name in str(err.value)
