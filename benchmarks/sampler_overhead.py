"""The samplers' own time per step, with a network that costs nothing (it returns zeros), so
what is left is the loop: timestep tables, the x0/eps algebra, noise draws, tensor creation.

  python benchmarks/sampler_overhead.py --steps 50 --reps 3
"""
import argparse
import time

import numpy as np
import paddle

from ppddpm import (DDIMSampler, DDPMSampler, GaussianDiffusion, get_beta_schedule, respace,
                    space_timesteps)
from ppddpm.samplers import DPMSolverPPSampler, UniPCSampler


class ZeroNet:
    """A stand-in network: eps = 0 at no cost (beyond making the output tensor)."""
    data_range = (-1.0, 1.0)
    num_classes = None

    def __call__(self, x, t, y=None):
        return paddle.to_tensor(np.zeros(x.shape, np.float32))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()
    d = GaussianDiffusion(get_beta_schedule("linear", 1000, 1e-4, 0.02))
    samplers = {
        "DDIM, eta 0": DDIMSampler(d, num_steps=args.steps, eta=0.0),
        "DDIM, eta 1": DDIMSampler(d, num_steps=args.steps, eta=1.0),
        "DPM-Solver++ 2M": DPMSolverPPSampler(d, num_steps=args.steps, order=2),
        "UniPC 2": UniPCSampler(d, num_steps=args.steps, order=2),
        f"DDPM ({args.steps}-step respacing)": DDPMSampler(
            respace(d, space_timesteps(1000, str(args.steps)))),
    }
    print(f"| sampler, {args.batch} images | 1x16x16 ms/step | 3x32x32 ms/step |")
    print("| --- | --- | --- |")
    for name, sampler in samplers.items():
        row = []
        for shape in ([args.batch, 1, 16, 16], [args.batch, 3, 32, 32]):
            sampler.sample(ZeroNet(), shape, progress=False)
            t0 = time.perf_counter()
            for _ in range(args.reps):
                sampler.sample(ZeroNet(), shape, progress=False).numpy()
            row.append((time.perf_counter() - t0) / args.reps / sampler.num_steps * 1000)
        print(f"| {name} | {row[0]:.2f} | {row[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
