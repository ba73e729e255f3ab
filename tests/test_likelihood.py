"""Bits/dim (ppddpm/evaluate/likelihood.py, --mode eval --metrics bpd) against the closed-form bound
of the exact optimal denoiser of Gaussian data, and through the command line."""
import json
import math
import os

import numpy as np
import paddle
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import ndtr

from ppddpm.evaluate import likelihood
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.diffusion.schedules import get_beta_schedule

MU, S = 0.1, 0.4
BETAS = get_beta_schedule("linear", 40, 5e-4, 0.3)


def gaussian_eps_model(abar):
    a = np.sqrt(1 - abar) / (abar * S ** 2 + 1 - abar)
    a_t = paddle.to_tensor(a.astype(np.float32))
    b_t = paddle.to_tensor((a * np.sqrt(abar) * MU).astype(np.float32))

    def model(x, t):
        return paddle.gather(a_t, t).reshape([-1, 1, 1, 1]) * x - paddle.gather(b_t, t).reshape([-1, 1, 1, 1])
    return model


def expected_bound_bits(d: GaussianDiffusion, x0: np.ndarray) -> np.ndarray:
    """E_eps of the bound for each pixel value x0, in bits (DDPM eq. 5), from the closed form
    of each term: KL of two Gaussians with the same variance for t >= 1, the prior KL, and
    the discretized decoder (eq. 13) averaged over x_1's noise by Gauss-Hermite quadrature."""
    ab = d.alphas_cumprod
    a = np.sqrt(1 - ab) / (ab * S ** 2 + 1 - ab)
    P, Q = (1 - np.sqrt(1 - ab) * a) / np.sqrt(ab), np.sqrt(1 - ab) * a * MU   # x0_hat = P x + Q
    total = 0.5 * (-1 - np.log(1 - ab[-1]) + (1 - ab[-1]) + ab[-1] * x0 ** 2)    # L_T
    for i in range(1, len(ab)):
        m = (1 - P[i] * np.sqrt(ab[i])) * x0 - Q[i]          # x0 - x0_hat: mean and variance
        err2 = m ** 2 + P[i] ** 2 * (1 - ab[i])
        total = total + d.posterior_mean_coef1[i] ** 2 * err2 / (2 * d.posterior_variance[i])
    nodes, weights = hermegauss(80)
    weights = weights / math.sqrt(2 * math.pi)
    sd = math.sqrt(d.posterior_variance[1])                  # the clipped log-variance at t = 0
    mean = P[0] * (np.sqrt(ab[0]) * x0[..., None] + np.sqrt(1 - ab[0]) * nodes) + Q[0]
    hi = np.where(x0[..., None] > 0.999, 1.0, ndtr((x0[..., None] + 1 / 255 - mean) / sd))
    lo = np.where(x0[..., None] < -0.999, 0.0, ndtr((x0[..., None] - 1 / 255 - mean) / sd))
    total = total + (-np.log(np.maximum(hi - lo, 1e-300)) * weights).sum(-1)
    return total / math.log(2)


def test_bound_of_the_exact_gaussian_denoiser_is_the_closed_form():
    d = GaussianDiffusion(BETAS, "eps", "fixed_small")
    rng = np.random.default_rng(0)
    v = np.clip(np.round(127.5 * (1 + MU + S * rng.standard_normal((24, 1, 16, 16)))), 0, 255)
    x0 = (v / 127.5 - 1).astype(np.float32)
    per_image = likelihood.image_bpd(d, gaussian_eps_model(d.alphas_cumprod), x0, seed=3,
                                     clip_denoised=False)
    want = expected_bound_bits(d, x0.astype(np.float64)).reshape(24, -1).mean(1)
    # each image's figure is a one-sample estimate of its expectation: compare the average
    sem = per_image[:, 0].std(ddof=1) / np.sqrt(24)
    assert abs(per_image[:, 0].mean() - want.mean()) < 4 * sem, (per_image[:, 0].mean(), want.mean(), sem)
    assert sem < 0.02 * want.mean()           # so the check is sharp
    # the pieces: L_T is exact (no noise), the decoder term is part of the total
    prior = 0.5 * (-1 - np.log(1 - d.alphas_cumprod[-1]) + (1 - d.alphas_cumprod[-1])
                   + d.alphas_cumprod[-1] * x0.astype(np.float64) ** 2) / math.log(2)
    np.testing.assert_allclose(per_image[:, 1], prior.reshape(24, -1).mean(1), rtol=1e-4)
    # batch split and order do not matter (per-image noise streams)
    halves = np.concatenate([likelihood.image_bpd(d, gaussian_eps_model(d.alphas_cumprod), x0[:10],
                                                  seed=3, clip_denoised=False),
                             likelihood.image_bpd(d, gaussian_eps_model(d.alphas_cumprod), x0[10:],
                                                  seed=3, index_offset=10, clip_denoised=False)])
    np.testing.assert_allclose(halves, per_image, rtol=1e-5, atol=1e-6)


def test_resumes_only_the_missing_images(tmp_path, monkeypatch):
    d = GaussianDiffusion(BETAS, "eps", "fixed_small")
    model = gaussian_eps_model(d.alphas_cumprod)
    x0 = np.random.default_rng(1).uniform(-1, 1, (6, 1, 4, 4)).astype(np.float32)
    get = lambda a, b: x0[a:b]
    meta = {"m": 1}
    full = likelihood.bpd_resumable(d, model, get, 6, 2, 0, str(tmp_path / "a"), meta, progress=False)
    likelihood.bpd_resumable(d, model, get, 2, 2, 0, str(tmp_path / "b"), meta, progress=False)
    calls = []
    real = likelihood.image_bpd
    monkeypatch.setattr(likelihood, "image_bpd", lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    resumed = likelihood.bpd_resumable(d, model, get, 6, 2, 0, str(tmp_path / "b"), meta, progress=False)
    assert calls == [2, 4]                    # the first batch was already there
    np.testing.assert_allclose(resumed, full, rtol=1e-6)


TINY = """\
base: {root}/configs/cifar10.yaml
model: {{ch: 16, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0, norm_groups: 8}}
diffusion: {{num_diffusion_steps: 8, beta_end: 0.2}}
data: {{num_workers: 0, download: false}}
sample: {{batchsize: 2}}
"""


def test_eval_bpd_through_the_command_line(tmp_path, capsys):
    from helpers_cli import ROOT
    from helpers_data import make_fake_cifar10
    from ppddpm.cli import main
    from ppddpm.config import load_config
    from ppddpm.models import build_model
    from ppddpm.convert.pretrained import load_pretrained, save_inference_file

    data = make_fake_cifar10(str(tmp_path / "ds"), 3)                 # 3 test images
    (tmp_path / "tiny.yaml").write_text(TINY.format(root=ROOT))
    cfg = load_config(str(tmp_path / "tiny.yaml"))
    paddle.seed(0)
    model = build_model(cfg.model)
    for p in model.parameters():                 # non-zero output layers
        p.set_value(paddle.randn(p.shape) * 0.05)
    weights = str(tmp_path / "tiny_ema.pdparams")
    save_inference_file(weights, model.state_dict(), GaussianDiffusion.from_config(cfg.diffusion).betas,
                        {}, cfg)
    out = str(tmp_path / "bpd.json")
    argv = ["--mode", "eval", "--metrics", "bpd", "--pretrained_path", weights, "--engine",
            "dygraph", "--data_dir", str(tmp_path / "ds"), "--sample_dir", str(tmp_path / "s"),
            "--eval_out", out, "--quiet"]
    assert main(str(tmp_path / "tiny.yaml"), "test", argv=argv) == 0
    result = json.load(open(out))
    net, diffusion, _ = load_pretrained(weights)
    want = likelihood.image_bpd(diffusion, net, data["test_data"].astype(np.float32) / 127.5 - 1)
    assert result["num_images"] == 3 and result["split"].startswith("cifar10 test")
    np.testing.assert_allclose(result["bpd"], want[:, 0].mean(), rtol=1e-5)
    assert result["bpd"] > 0 and not os.path.exists(tmp_path / "s" / "cifar10_test_bpd.partial")
    # a point set has no 8-bit likelihood: a one-line error, exit 2
    capsys.readouterr()
    bad = main(str(tmp_path / "tiny.yaml"), "test", argv=argv + ["-o", "data.dataset=gaussian8"])
    assert bad == 2 and "bits/dim needs 8-bit images" in capsys.readouterr().err
