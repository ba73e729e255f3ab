"""Sampling speed, side by side: one network evaluation at batch 16 (no grad), and optionally
end-to-end DDIM sampling (100 steps, 16 images), for ppddpm (Paddle Inference engine and
dynamic graph), diffusers on PyTorch and ppdiffusers on Paddle. Each framework runs in a
fresh subprocess under its own venv; the order rotates every round.

  python benchmarks/bench_sampling.py                      # one step, 3 rounds
  python benchmarks/bench_sampling.py --ddim --ddim_reps 2 # + DDIM 100 steps x 16 images
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, conditions, save_json, summarize, table  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frameworks", default="ppddpm,diffusers,ppdiffusers,ppddpm-dygraph")
    p.add_argument("--reps", type=int, default=3, help="rounds (one fresh process per framework each)")
    p.add_argument("--steps", type=int, default=5, help="timed network calls per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="CPU threads for every framework (default: the available cores)")
    p.add_argument("--ddim", action="store_true", help="also time end-to-end DDIM sampling")
    p.add_argument("--ddim_frameworks", default="ppddpm,diffusers")
    p.add_argument("--ddim_reps", type=int, default=2)
    p.add_argument("--ddim_steps", type=int, default=100)
    p.add_argument("--json", default=None, help="write all raw results here")
    args = p.parse_args()
    cache = tempfile.mkdtemp(prefix="ppddpm-bench-engines-")   # round 1 exports, later rounds load
    try:
        run(args, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def run(args, cache):
    print(f"conditions: {conditions()}; threads {args.threads}", flush=True)
    fws = args.frameworks.split(",")
    print(f"one sampling step, batch {args.batch}:", flush=True)
    raw = {"step": alternate(fws, args.reps, log=lambda m: print(m, flush=True), task="sample_step",
                             threads=args.threads, paddle_omp=args.threads, batch=args.batch,
                             steps=args.steps, warmup=args.warmup, cache_dir=cache)}
    step = summarize(raw["step"])
    print(table(step, "diffusers", f"sampling step, batch {args.batch}"), flush=True)
    for f, s in step.items():
        if s.get("extra"):
            print(f"  {f}: {s['extra']}")
    if args.ddim:
        fws = args.ddim_frameworks.split(",")
        print(f"DDIM {args.ddim_steps} steps, {args.batch} images:", flush=True)
        raw["ddim"] = alternate(fws, args.ddim_reps, log=lambda m: print(m, flush=True), task="ddim",
                                threads=args.threads, paddle_omp=args.threads, batch=args.batch,
                                steps=1, warmup=0, ddim_steps=args.ddim_steps, cache_dir=cache)
        print(table(summarize(raw["ddim"]), "diffusers",
                    f"DDIM {args.ddim_steps} steps, {args.batch} images"), flush=True)
    if args.json:
        save_json(args.json, raw)


if __name__ == "__main__":
    main()
