"""Build tests/fixtures/solver_steps.npz: diffusers' multistep schedulers, step by step, on an
exact model, for tests/test_solver_fixture.py to compare ppddpm's solvers with.

Needs torch + diffusers (optional, never needed by ppddpm or its tests):
    /work/venv-ref/bin/python tools/make_solver_fixture.py

The "network" is the Bayes-optimal noise predictor of a 2-D mixture of two Gaussians,
E[eps | x_t] in closed form (ppddpm/samplers/oracles.py writes the same formula), evaluated
in float64 at the float64 alpha-bar of the integer timestep on both sides. For
DPMSolverMultistepScheduler (algorithm_type dpmsolver++ and dpmsolver, orders 1-3) and
UniPCMultistepScheduler (bh2, orders 1-3), for timestep_spacing leading / linspace /
trailing and 10 and 20 steps, the file holds the scheduler's timesteps and x after each
step (x_T first). diffusers refuses final_sigmas_type "zero" for the noise-prediction form,
so its dpmsolver runs end at sigma_min (t = 0) and their last step is not comparable.
"""
import argparse
import os

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures", "solver_steps.npz")

T = 1000
MEANS = np.array([[0.5, 0.5], [-0.5, -0.3]])
STD = 0.3
SPACINGS = ("leading", "linspace", "trailing")
STEPS = (10, 20)


def mixture_eps(x, abar):
    """E[eps | x_t = x] for equal-weight N(mu_k, STD^2 I) data, float64 (oracles.py's formula)."""
    v = abar * STD ** 2 + 1.0 - abar
    diff = x[:, None, :] - np.sqrt(abar) * MEANS[None]                 # [N, K, D]
    logits = -(diff ** 2).sum(-1) / (2 * v)
    logits -= logits.max(axis=1, keepdims=True)
    r = np.exp(logits)
    r /= r.sum(axis=1, keepdims=True)
    return np.sqrt(1.0 - abar) * (r[:, :, None] * diff).sum(1) / v


def run(scheduler, x_T, abar):
    xs = [x_T.astype(np.float32)]
    x = torch.from_numpy(xs[0].copy())
    for t in scheduler.timesteps:
        eps = mixture_eps(x.double().numpy(), abar[int(t)])
        x = scheduler.step(torch.from_numpy(eps.astype(np.float32)), t, x).prev_sample
        xs.append(x.numpy().copy())
    return scheduler.timesteps.numpy().astype(np.int64), np.stack(xs)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=DEFAULT_OUT)
    args = p.parse_args()
    betas = np.linspace(1e-4, 0.02, T, dtype=np.float64)    # Ho et al.'s linear schedule
    abar = np.cumprod(1.0 - betas)
    x_T = np.random.default_rng(25).standard_normal((8, 2))
    out = {"betas": betas, "means": MEANS, "std": np.array(STD), "x_T": x_T}
    common = dict(num_train_timesteps=T, trained_betas=betas.tolist())
    for spacing in SPACINGS:
        for n in STEPS:
            for order in (1, 2, 3):
                runs = {
                    "dpmsolver++": DPMSolverMultistepScheduler(
                        algorithm_type="dpmsolver++", solver_order=order,
                        timestep_spacing=spacing, **common),
                    "dpmsolver": DPMSolverMultistepScheduler(
                        algorithm_type="dpmsolver", solver_order=order,
                        final_sigmas_type="sigma_min", timestep_spacing=spacing, **common),
                    "unipc": UniPCMultistepScheduler(solver_order=order, solver_type="bh2",
                                                     timestep_spacing=spacing, **common),
                }
                for name, scheduler in runs.items():
                    scheduler.set_timesteps(n)
                    ts, xs = run(scheduler, x_T, abar)
                    key = f"{name}/{spacing}/{n}/{order}"
                    out[key + "/timesteps"], out[key + "/x"] = ts, xs
                    print(key, ts[:3], "...", ts[-2:])
    np.savez_compressed(args.out, **out)
    print("wrote", args.out, os.path.getsize(args.out), "bytes")


if __name__ == "__main__":
    main()
