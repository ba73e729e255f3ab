"""Steps to quality on an exact model: ppddpm's samplers and diffusers' schedulers side by side.

The data is the 2-D ``gaussian8`` mixture (ppddpm/data/toy.py); the "network" is its exact
noise predictor (ppddpm/samplers/oracles.py), so the distance of the samples to fresh data measures
the sampler alone. Every sampler starts from the same 20,000 points x_T ~ N(0, I); the figure
is the sliced Wasserstein-1 distance (ppddpm/toy/metrics.py) of its output to 20,000 fresh data
points, against the number of network evaluations (NFE). The floor is fresh data against
fresh data. diffusers (optional: pip install -r benchmarks/requirements-peers.txt) gets the
same betas, start points and eps model; x0 clipping is off on both sides (the data lie well
inside [-1, 1], so it would change nothing but the comparison's fairness).

  python benchmarks/bench_samplers_oracle.py                   # the full table (~10 min)
  python benchmarks/bench_samplers_oracle.py --nfe 10,20 --no-diffusers
  python benchmarks/bench_samplers_oracle.py --grids --nfe 10,20   # issue 25's comparison
      [--peer_site /work/venv-ref/lib/python3.11/site-packages]  # diffusers from another venv

--grids compares each multistep solver and order with diffusers' same scheduler on the same
spacing (ppddpm's uniform is diffusers' "leading"): one row per spacing, NFE, solver and
order. A solver with N grid points and its final first-order step to the data takes N
evaluations on both sides.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppddpm.data.toy import sample_toy                      # noqa: E402
from ppddpm.diffusion import GaussianDiffusion              # noqa: E402
from ppddpm.toy.metrics import sliced_wasserstein              # noqa: E402
from ppddpm.samplers.oracles import gaussian8_oracle                 # noqa: E402
from ppddpm.diffusion.respace import respace                          # noqa: E402
from ppddpm.samplers import (DDIMSampler, DDPMSampler, DPMSolverPPSampler,  # noqa: E402
                             DPMSolverSampler, DPMSolverSinglestepSampler, UniPCSampler)
from ppddpm.diffusion.schedules import get_beta_schedule              # noqa: E402

SPACINGS = ("uniform", "trailing", "logsnr")


def ppddpm_rows(spacings):
    """name -> function(diffusion, nfe) -> sampler."""
    rows = {"DDPM ancestral (respaced, fixed_small)":
            lambda d, n: DDPMSampler(respace(d, str(n)), clip_denoised=False)}
    for sp in spacings:
        rows[f"DDIM eta 0, {sp}"] = lambda d, n, sp=sp: DDIMSampler(
            d, num_steps=n, skip=sp, clip_denoised=False)
        for cls, label in ((DPMSolverPPSampler, "DPM-Solver++"), (DPMSolverSampler, "DPM-Solver"),
                           (UniPCSampler, "UniPC")):
            for order in (2, 3):
                rows[f"{label} {order}M, {sp}"] = lambda d, n, c=cls, o=order, sp=sp: c(
                    d, num_steps=n, spacing=sp, order=o, clip_denoised=False)
        for order in (2, 3):
            rows[f"DPM-Solver singlestep {order}S, {sp}"] = lambda d, n, o=order, sp=sp: \
                DPMSolverSinglestepSampler(d, num_steps=n, spacing=sp, order=o,
                                           clip_denoised=False)
    return rows


def run_ppddpm(make, diffusion, oracle, x_T, nfe):
    import paddle
    sampler = make(diffusion, nfe)
    assert sampler.num_steps == nfe, (sampler.num_steps, nfe)
    n = len(x_T)
    x = sampler.sample(oracle, [n, 2, 1, 1], seed=0, noise=paddle.to_tensor(
        x_T.reshape(n, 2, 1, 1).astype(np.float32)), progress=False)
    return x.numpy().reshape(n, 2)


DIFFUSERS = {  # name -> (scheduler class, config overrides, NFE per step)
    "DDIMScheduler (eta 0)": ("DDIMScheduler", {"clip_sample": False}, 1),
    "DDIMScheduler trailing": ("DDIMScheduler", {"clip_sample": False,
                                                 "timestep_spacing": "trailing"}, 1),
    "DPMSolverMultistep++ 2M": ("DPMSolverMultistepScheduler", {}, 1),
    "DPMSolverMultistep++ 3M": ("DPMSolverMultistepScheduler", {"solver_order": 3}, 1),
    "DPMSolverMultistep++ 2M logSNR": ("DPMSolverMultistepScheduler",
                                       {"use_lu_lambdas": True}, 1),
    "DPMSolverMultistep 2M (noise)": ("DPMSolverMultistepScheduler",
                                      {"algorithm_type": "dpmsolver",
                                       "final_sigmas_type": "sigma_min"}, 1),
    "UniPCMultistep bh2 2": ("UniPCMultistepScheduler", {}, 1),
    "UniPCMultistep bh2 3": ("UniPCMultistepScheduler", {"solver_order": 3}, 1),
    "UniPCMultistep bh1 3": ("UniPCMultistepScheduler", {"solver_order": 3,
                                                         "solver_type": "bh1"}, 1),
    "DEISMultistep 2": ("DEISMultistepScheduler", {}, 1),
    "DEISMultistep 3": ("DEISMultistepScheduler", {"solver_order": 3}, 1),
    "EulerDiscrete": ("EulerDiscreteScheduler", {}, 1),
    "HeunDiscrete": ("HeunDiscreteScheduler", {}, 2),
}


def run_diffusers(name, betas, oracle, x_T, nfe):
    """diffusers' own step() loop with the oracle as the eps model (float32 tensors)."""
    return run_scheduler(*DIFFUSERS[name], betas, oracle, x_T, nfe)


def run_scheduler(cls_name, overrides, per_step, betas, oracle, x_T, nfe):
    import diffusers   # optional peer, only for the side-by-side rows
    import torch
    sched = getattr(diffusers, cls_name)(num_train_timesteps=len(betas),
                                         trained_betas=betas.tolist(), **overrides)
    steps = (nfe + 1) // 2 if per_step == 2 else nfe
    sched.set_timesteps(steps)
    abar = np.cumprod(1.0 - betas)
    sigma_train = np.sqrt((1 - abar) / abar)
    x = torch.from_numpy(x_T.astype(np.float32)) * sched.init_noise_sigma
    calls = 0
    for t in sched.timesteps:
        inp = sched.scale_model_input(x, t)
        if getattr(sched, "sigmas", None) is not None and getattr(sched, "step_index", None) is not None:
            s = float(sched.sigmas[sched.step_index])     # the noise level the scheduler is at
        else:   # DDIM: integer t, where sigma_train is exact
            s = float(np.interp(float(t), np.arange(len(betas)), sigma_train))
        eps = oracle.eps_np(inp.double().numpy(), 1.0 / (1.0 + s * s))
        calls += 1
        x = sched.step(torch.from_numpy(eps.astype(np.float32)), t, x).prev_sample
    return x.numpy().astype(np.float64), calls


# ppddpm spacing -> diffusers' timestep_spacing; solver -> (ppddpm class, diffusers scheduler,
# its config). diffusers refuses final_sigmas_type "zero" for the noise form: it ends at sigma_min.
GRID_SPACINGS = {"uniform": "leading", "trailing": "trailing", "linspace": "linspace"}
GRID_SOLVERS = {
    "DPM-Solver++": (DPMSolverPPSampler, "DPMSolverMultistepScheduler", {}),
    "DPM-Solver": (DPMSolverSampler, "DPMSolverMultistepScheduler",
                   {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"}),
    "UniPC": (UniPCSampler, "UniPCMultistepScheduler", {}),
}


def grid_rows(diffusion, betas, oracle, x_T, data, nfes, orders=(2, 3)):
    """(spacing, NFE, solver, ppddpm's W1, diffusers' W1) for every combination."""
    rows = []
    for sp, their_sp in GRID_SPACINGS.items():
        for n in nfes:
            for label, (cls, sched, conf) in GRID_SOLVERS.items():
                for order in orders:
                    make = lambda d, k, c=cls, o=order: c(d, num_steps=k, spacing=sp, order=o,
                                                          clip_denoised=False)
                    ours = sliced_wasserstein(run_ppddpm(make, diffusion, oracle, x_T, n), data)
                    x, _ = run_scheduler(sched, dict(conf, solver_order=order,
                                                     timestep_spacing=their_sp), 1,
                                         betas, oracle, x_T, n)
                    rows.append((sp, n, f"{label} order {order}", ours, sliced_wasserstein(x, data)))
                    print(" | ".join(str(v) for v in rows[-1]), flush=True)
    return rows


def print_grid_table(rows, floor):
    print("| spacing | NFE | solver | ppddpm | diffusers | ppddpm / diffusers |")
    print("|---|---:|---|---:|---:|---:|")
    for sp, n, label, ours, theirs in rows:
        print(f"| {sp} | {n} | {label} | {ours:.4f} | {theirs:.4f} | {ours / theirs:.3f} |")
    held = sum(ours <= theirs for *_, ours, theirs in rows)
    print(f"\nppddpm at least as close: {held} of {len(rows)}; within 2%: "
          f"{sum(ours <= 1.02 * theirs for *_, ours, theirs in rows)}; floor {floor:.4f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nfe", default="5,10,15,20,50,100")
    p.add_argument("--num_points", type=int, default=20000)
    p.add_argument("--spacings", default=",".join(SPACINGS))
    p.add_argument("--no-diffusers", action="store_true")
    p.add_argument("--no-ppddpm", action="store_true")
    p.add_argument("--rows", default=None, help="only rows whose name contains one of these "
                   "comma-separated words (e.g. 'DEIS,DPMSolver')")
    p.add_argument("--json", default=None, help="also write the table here")
    p.add_argument("--peer_site", default=None, metavar="DIR", help="a site-packages folder "
                   "holding torch + diffusers, appended to sys.path when they are not "
                   "installed beside Paddle (e.g. /work/venv-ref/lib/python3.11/site-packages)")
    p.add_argument("--grids", action="store_true", help="only the solver-by-solver comparison "
                   "with diffusers on uniform (leading), trailing and linspace")
    args = p.parse_args()
    if args.peer_site:
        sys.path.append(args.peer_site)
    nfes = [int(s) for s in args.nfe.split(",")]
    n = args.num_points
    betas = get_beta_schedule("linear", 1000)
    diffusion = GaussianDiffusion(betas, "eps", "fixed_small")
    oracle = gaussian8_oracle(diffusion.alphas_cumprod)
    data = sample_toy("gaussian8", n, seed=0, split="eval")[0]
    floor = sliced_wasserstein(sample_toy("gaussian8", n, seed=1, split="eval")[0], data)
    x_T = np.random.default_rng(2024).standard_normal((n, 2))
    table, start = {}, time.perf_counter()
    print(f"floor (fresh data against fresh data, {n} points): {floor:.4f}", flush=True)
    if args.grids:
        print_grid_table(grid_rows(diffusion, betas, oracle, x_T, data, nfes), floor)
        print(f"\n{time.perf_counter() - start:.0f} s")
        return
    keep = lambda name: args.rows is None or any(w in name for w in args.rows.split(","))
    rows = {} if args.no_ppddpm else ppddpm_rows(args.spacings.split(","))
    for name, make in rows.items():
        if not keep(name):
            continue
        table["ppddpm " + name] = {k: sliced_wasserstein(run_ppddpm(make, diffusion, oracle, x_T, k), data)
                                   for k in nfes}
        print(f"ppddpm {name}: " + " ".join(f"{v:.4f}" for v in table["ppddpm " + name].values()),
              flush=True)
    if not args.no_diffusers:
        for name in filter(keep, DIFFUSERS):
            row = {}
            for k in nfes:
                x, calls = run_diffusers(name, betas, oracle, x_T, k)
                row[calls if calls != k else k] = sliced_wasserstein(x, data)
            table["diffusers " + name] = row
            print(f"diffusers {name}: " + " ".join(f"{c}:{v:.4f}" for c, v in row.items()), flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s\n")
    print("| sampler | " + " | ".join(f"NFE {k}" for k in nfes) + " |")
    print("|---|" + "---:|" * len(nfes))
    for name, row in table.items():
        cells = []
        for k in nfes:
            hit = [v for c, v in row.items() if c == k]
            cells.append(f"{hit[0]:.4f}" if hit else "—")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| floor (fresh data against fresh data) | " + " | ".join(f"{floor:.4f}" for _ in nfes) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"floor": floor, "table": {k: {str(c): v for c, v in r.items()}
                                                 for k, r in table.items()}}, fh, indent=1)


if __name__ == "__main__":
    main()
