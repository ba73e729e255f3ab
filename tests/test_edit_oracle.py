"""ppddpm.edit against closed forms, with the exact denoiser of Gaussian data N(mu, Sigma)
(ppddpm/samplers/gaussian_oracle.py, non-diagonal Sigma):

- encode: decode(encode(x)) -> x as the steps grow, at first order (both directions are
  Euler steps of the probability-flow ODE);
- SDEdit: strength 0 returns the input, strength 1 is plain sampling from the same seed,
  bit for bit, for a stochastic, a deterministic and a multistep sampler;
- RePaint: the law of the inpainted coordinates is diffusers' RePaintScheduler's on the same
  problem (a committed fixture), the known ones are kept exactly, and resampling moves the
  inpainted ones towards their closed-form conditional law given the known ones (which
  RePaint, an approximation, does not reach at the paper's settings on this law);
- RePaint's schedule is the paper's get_schedule_jump walk.
"""
import functools
import json
import os

import numpy as np
import paddle
import pytest

from ppddpm import DDIMSampler, DDPMSampler, GaussianDiffusion, get_beta_schedule, respace
from ppddpm.edit import decode, encode, img2img, repaint, repaint_schedule, sdedit_steps
from ppddpm.samplers import DPMSolverPPSampler
from ppddpm.samplers.gaussian_oracle import GaussianOracle

MEAN = np.array([0.3, -0.2, 0.1, 0.4])
L = np.array([[0.5, 0.0, 0.0, 0.0], [0.3, 0.4, 0.0, 0.0], [0.25, -0.2, 0.3, 0.0],
              [-0.1, 0.3, 0.2, 0.25]])
COV = L @ L.T                                   # correlations up to about 0.8
DIFFUSION = GaussianDiffusion(get_beta_schedule("linear", 1000), var_type="fixed_small")
ORACLE = GaussianOracle(MEAN, COV, DIFFUSION.alphas_cumprod)


def points(n, seed=0):
    return paddle.to_tensor(ORACLE.sample(n, seed).astype(np.float32).reshape(n, 4, 1, 1))


def reconstruction_rms(num_steps, x0):
    sampler = DDIMSampler(DIFFUSION, num_steps=num_steps, eta=0.0, clip_denoised=False)
    back = decode(ORACLE, sampler, encode(ORACLE, sampler, x0))
    return float(np.sqrt(np.mean((back.numpy() - x0.numpy()) ** 2)))


def test_encode_then_decode_converges_at_first_order():
    x0 = points(64)
    errors = [reconstruction_rms(k, x0) for k in (40, 80, 160, 320)]   # past the first steps
    orders = -np.diff(np.log(errors)) / np.log(2.0)                     # (10 -> 20: 0.82)
    assert np.all((orders > 0.9) & (orders < 1.1)), (errors, orders)
    assert errors[-1] < 0.006, errors


def test_encoded_latents_of_data_are_standard_normal():
    """The ODE maps the data law onto the prior: x_T of data points is N(0, I) up to the
    discretisation (500 steps; abar_T ~ 4e-5) and the sample's own error."""
    z = encode(ORACLE, DDIMSampler(DIFFUSION, num_steps=500, eta=0.0, clip_denoised=False),
               points(2000, seed=1)).numpy().reshape(2000, 4)
    z_mean, z_cov = z_scores(z, np.zeros(4), np.eye(4))
    assert z_mean < 4 and z_cov < 4, (z_mean, z_cov)


SAMPLERS = {
    "ddpm": lambda: DDPMSampler(respace(DIFFUSION, "25"), clip_denoised=False),
    "ddim_eta": lambda: DDIMSampler(DIFFUSION, num_steps=12, eta=0.7, clip_denoised=False),
    "dpm_solver++": lambda: DPMSolverPPSampler(DIFFUSION, num_steps=8, spacing="logsnr",
                                               clip_denoised=False),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sdedit_strength_one_is_plain_sampling_and_zero_the_input(name):
    sampler, x0 = SAMPLERS[name](), points(6, seed=2)
    plain = sampler.sample(ORACLE, [6, 4, 1, 1], seed=5, index_offset=3, progress=False)
    edited = img2img(ORACLE, sampler, x0, 1.0, seed=5, index_offset=3)
    np.testing.assert_array_equal(edited.numpy(), plain.numpy())
    np.testing.assert_array_equal(img2img(ORACLE, sampler, x0, 0.0, seed=5).numpy(), x0.numpy())
    half = img2img(ORACLE, sampler, x0, 0.5, seed=5)
    assert 0 < len(sdedit_steps(sampler, 0.5)) < sampler.num_steps
    assert not np.allclose(half.numpy(), x0.numpy()) and not np.allclose(half.numpy(), plain.numpy())


def test_sdedit_keeps_the_data_law():
    """x_t0 of data points is a sample of the marginal at t0, and the reverse chain from the
    marginal ends at the data law: SDEdit of data points is a sample of the data."""
    sampler = DDPMSampler(DIFFUSION, clip_denoised=False)   # every step: no respacing error
    out = img2img(ORACLE, sampler, points(1500, seed=3), 0.3, seed=1).numpy().reshape(1500, 4)
    z_mean, z_cov = z_scores(out, MEAN, COV)
    assert z_mean < 4 and z_cov < 4, (z_mean, z_cov)


def paper_schedule_levels(t_T, jump_length, jump_n_sample):
    """RePaint's get_schedule_jump (n_sample 1, no second or third jumps) as timesteps, read
    from the paper's repository (andreas128/RePaint, guided_diffusion/scheduler.py) and turned
    into levels (timestep t is level t + 1; -1 is the data, level 0)."""
    jumps = {j: jump_n_sample - 1 for j in range(0, t_T - jump_length, jump_length)}
    t, ts = t_T, []
    while t >= 1:
        t -= 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                ts.append(t)
    ts.append(-1)
    return [t + 1 for t in ts]


@pytest.mark.parametrize("t_T,jump_length,jump_n_sample", [(6, 2, 2), (250, 10, 10), (30, 4, 3),
                                                           (10, 10, 5), (20, 1, 1)])
def test_repaint_schedule_is_the_papers(t_T, jump_length, jump_n_sample):
    levels = paper_schedule_levels(t_T, jump_length, jump_n_sample)
    walk = [t_T]
    for src, dst in repaint_schedule(t_T, jump_length, jump_n_sample):
        assert src == walk[-1] and dst in (src - 1, src + jump_length)
        walk.extend(range(src + 1, dst + 1) if dst > src else [dst])
    assert walk == levels


KNOWN = np.array([True, False, True, False])
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                       "repaint_gaussian.json")


CHAIN50 = GaussianDiffusion(np.linspace(0.002, 0.4, 50), var_type="fixed_small")
ORACLE50 = GaussianOracle(MEAN, COV, CHAIN50.alphas_cumprod)


@functools.lru_cache(maxsize=None)   # two tests read the same runs
def repaint_samples(jump_n_sample, n=2000, seed=0, jump_length=5):
    """The generated coordinates of n RePaint runs on one x0 (DDPM on a 50-step chain)."""
    sampler = DDPMSampler(CHAIN50, clip_denoised=False)
    x0 = np.tile(np.array([0.9, 0.0, -0.3, 0.0], dtype=np.float32).reshape(1, 4, 1, 1), (n, 1, 1, 1))
    mask = KNOWN.astype(np.float32).reshape(1, 4, 1, 1)
    out = repaint(ORACLE50, sampler, x0, mask, jump_length=jump_length, jump_n_sample=jump_n_sample,
                  seed=seed).numpy().reshape(n, 4)
    np.testing.assert_array_equal(out[:, KNOWN], x0.reshape(n, 4)[:, KNOWN])
    return out[:, ~KNOWN]


def z_scores(samples, mean, cov, n_ref=None):
    """(largest |z| of the mean, largest |z| of a covariance entry) of ``samples`` against
    (mean, cov), in standard errors of the difference: of the sample alone against a closed
    form, of both samples against another sample of n_ref points."""
    n = len(samples)
    scale = 1.0 / n + (0.0 if n_ref is None else 1.0 / n_ref)
    z_mean = (samples.mean(0) - mean) / np.sqrt(np.diag(cov) * scale)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) * scale)
    return np.abs(z_mean).max(), np.abs((np.cov(samples.T) - cov) / se_cov).max()


def conditional_errors(samples):
    """``z_scores`` against the closed-form conditional law of the generated coordinates."""
    return z_scores(samples, *ORACLE.conditional(KNOWN, [0.9, -0.3]))


@pytest.mark.parametrize("jump_n_sample", [1, 5])
def test_repaint_matches_diffusers_on_the_same_problem(jump_n_sample):
    """diffusers' RePaintScheduler on the same data, mask, 50-step chain, jump length 5 and
    samples (tools/make_repaint_fixture.py, 20000 runs): the same law within statistical
    error."""
    with open(FIXTURE) as fh:
        ref = json.load(fh)
    run = ref["runs"][str(jump_n_sample)]
    z_mean, z_cov = z_scores(repaint_samples(jump_n_sample, seed=jump_n_sample),
                             np.array(run["mean"]), np.array(run["cov"]), ref["n"])
    assert z_mean < 4 and z_cov < 4, (z_mean, z_cov)


def test_resampling_moves_repaint_towards_the_gaussian_conditional():
    """Without resampling (the replacement method) the generated coordinates hardly see the
    known ones: their mean is far from the closed-form conditional mean. Each round of
    resampling brings it closer; at the paper's 10 it is still some way off on this strongly
    correlated law (README "Editing real images" has the table: 10 resamplings are hardly
    better than 5)."""
    errors = [conditional_errors(repaint_samples(r, seed=r))[0] for r in (1, 5)]
    assert errors[0] > 40 and errors[1] < errors[0] - 10, errors
