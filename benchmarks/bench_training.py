"""Training speed and memory, side by side: one step (forward, L_simple, backward, Adam) of
the CIFAR-10 UNet at batch 8 in ppddpm, diffusers on PyTorch and ppdiffusers on Paddle, each
in a fresh subprocess under its own venv, the order rotating every round. Peak memory is the
worker process's RSS high-water mark (getrusage ru_maxrss).

  python benchmarks/bench_training.py
  python benchmarks/bench_training.py --paddle_omp 2     # ppdiffusers with 2 OpenMP threads

ppddpm uses --threads threads, as torch does (its CLI's default: every available core);
ppdiffusers uses --paddle_omp (Paddle's own default of 1, which was its fastest here).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, conditions, save_json, summarize, table  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frameworks", default="ppddpm,diffusers,ppdiffusers")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=3, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="torch and ppddpm threads (default: the available cores)")
    p.add_argument("--paddle_omp", type=int, default=1,
                   help="OMP_NUM_THREADS for ppdiffusers (Paddle's own default is 1)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    print(f"conditions: {conditions()}; torch and ppddpm threads {args.threads}, ppdiffusers "
          f"OMP_NUM_THREADS {args.paddle_omp}", flush=True)
    fws = args.frameworks.split(",")
    raw = alternate(fws, args.reps, log=lambda m: print(m, flush=True), task="train_step",
                    threads=args.threads, paddle_omp=args.paddle_omp, batch=args.batch,
                    steps=args.steps, warmup=args.warmup)
    s = summarize(raw)
    print(table(s, "diffusers", f"training step, batch {args.batch}", mem=True))
    if "ppddpm" in s and "ppdiffusers" in s and "median_s" in s["ppdiffusers"] and "median_s" in s["ppddpm"]:
        print(f"ppddpm / ppdiffusers: {s['ppddpm']['median_s'] / s['ppdiffusers']['median_s']:.2f}")
    for f, v in s.items():
        if v.get("params"):
            print(f"  {f}: {v['params']:,} parameters {v.get('extra', '')}")
    if args.json:
        save_json(args.json, raw)


if __name__ == "__main__":
    main()
