"""The README's tables for the editing modes, on the exact denoiser of Gaussian data
N(mu, Sigma) (ppddpm/samplers/gaussian_oracle.py; the mean and covariance of
tests/test_edit_oracle.py):

1. encode then decode with DDIM (eta 0): the RMS reconstruction error against the number of
   steps, and the order it falls at (the DDIM paper's table 2 measures the same on CIFAR-10);
2. RePaint (DDPM on a 50-step linear chain, jump length 5, x0 = (0.9, ?, -0.3, ?)): how far
   the inpainted coordinates are from their closed-form conditional law, in standard errors,
   against the number of samples per stretch (jump_n_sample).

    python tools/edit_oracle_tables.py [--n 4000]
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from test_edit_oracle import (KNOWN, ORACLE, conditional_errors, points,  # noqa: E402
                              reconstruction_rms, repaint_samples)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4000, help="points per RePaint run")
    args = p.parse_args()
    x0 = points(256, seed=11)
    print("| DDIM steps | RMS of decode(encode(x)) - x | order |\n| ---: | ---: | ---: |")
    last = None
    for k in (10, 20, 50, 100, 200, 500):
        err = reconstruction_rms(k, x0)
        order = "" if last is None else f"{-np.log(err / last[1]) / np.log(k / last[0]):.2f}"
        print(f"| {k} | {err:.5f} | {order} |")
        last = (k, err)
    mean, cov = ORACLE.conditional(KNOWN, [0.9, -0.3])
    print(f"\nclosed-form conditional: mean {np.round(mean, 4)}, covariance {np.round(cov, 4).tolist()}")
    print("\n| jump_n_sample | mean of x_u | largest error of the mean, in s.e. | largest error "
          "of a covariance entry, in s.e. |\n| ---: | --- | ---: | ---: |")
    for r in (1, 2, 5, 10, 20, 40):
        s = repaint_samples(r, n=args.n, seed=r)
        z_mean, z_cov = conditional_errors(s)
        print(f"| {r} | {np.round(s.mean(0), 3)} | {z_mean:.1f} | {z_cov:.1f} |")


if __name__ == "__main__":
    main()
