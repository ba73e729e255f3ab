"""tests/fixtures/repaint_gaussian.json: diffusers' RePaintScheduler (the reference
implementation beside the paper's own) inpainting Gaussian data N(mu, Sigma) with its exact
noise predictor, the statistics of the generated coordinates that tests/test_edit_oracle.py
compares ppddpm's RePaint with (the same data, mask, 50-step linear chain and schedule; DDPM
steps, i.e. eta 1, and no clipping). The chain is diffusers' own 50 training steps, every one
visited: with fewer inference than training steps, diffusers' undo_step noises x_{t-n} with
betas[t .. t+n-1], the n steps above the jump's (ppddpm jumps by q(x_t | x_s) exactly), so
only at a stride of 1 do the two mean the same chain. Run with the peers' venv:

    /work/venv-ref/bin/python tools/make_repaint_fixture.py
"""
import json
import os

import diffusers
import numpy as np
import torch
from diffusers import RePaintScheduler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN = [0.3, -0.2, 0.1, 0.4]          # as tests/test_edit_oracle.py
L = [[0.5, 0.0, 0.0, 0.0], [0.3, 0.4, 0.0, 0.0], [0.25, -0.2, 0.3, 0.0], [-0.1, 0.3, 0.2, 0.25]]
KNOWN = [True, False, True, False]
X0 = [0.9, 0.0, -0.3, 0.0]
N, STEPS, JUMP = 20000, 50, 5
BETA_START, BETA_END = 0.002, 0.4     # 50 steps: the linear schedule of 1000 steps, 20x


def repaint_stats(jump_n_sample: int, seed: int):
    mean, cov, known = np.array(MEAN), np.array(L) @ np.array(L).T, np.array(KNOWN)
    s = RePaintScheduler(num_train_timesteps=STEPS, beta_start=BETA_START, beta_end=BETA_END,
                         beta_schedule="linear", eta=1.0, clip_sample=False)
    s.set_timesteps(STEPS, jump_length=JUMP, jump_n_sample=jump_n_sample)
    abar = s.alphas_cumprod.double().numpy()
    g = torch.Generator().manual_seed(seed)
    x0 = torch.tensor(np.tile(X0, (N, 1)), dtype=torch.float32)
    mask = torch.tensor(known, dtype=torch.float32).expand(N, 4)

    def eps(x, t):   # E[eps | x_t] = sqrt(1 - abar) C_t^-1 (x_t - sqrt(abar) mu)
        a = abar[t]
        c_t = a * cov + (1 - a) * np.eye(4)
        d = x.double().numpy() - np.sqrt(a) * mean
        return torch.tensor(np.sqrt(1 - a) * np.linalg.solve(c_t, d.T).T, dtype=torch.float32)

    x = torch.randn(N, 4, generator=g)
    t_last = s.timesteps[0] + 1
    for t in s.timesteps:
        if t < t_last:
            x = s.step(eps(x, int(t)), t, x, x0, mask, generator=g).prev_sample
        else:
            x = s.undo_step(x, t_last, generator=g)
        t_last = t
    u = x.double().numpy()[:, ~known]
    return {"mean": u.mean(0).tolist(), "cov": np.cov(u.T).tolist()}


def main():
    out = {"diffusers": diffusers.__version__, "n": N, "num_inference_steps": STEPS,
           "jump_length": JUMP, "betas": [BETA_START, BETA_END], "mean": MEAN, "cov_cholesky": L, "known": KNOWN, "x0": X0,
           "runs": {str(r): repaint_stats(r, seed=r) for r in (1, 5)}}
    path = os.path.join(ROOT, "tests", "fixtures", "repaint_gaussian.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1)
    print(path, json.dumps(out["runs"]))


if __name__ == "__main__":
    main()
