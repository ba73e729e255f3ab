"""Sample quality against the number of sampling steps on a 2-D toy set (default gaussian25),
for the same trained models: an L_simple model (configs/toy.yaml) sampled by DDPM with the
fixed-large and the fixed-small variance on respaced chains and by DDIM (eta 0), and an
Improved-DDPM model (configs/toy_hybrid.yaml: learned_range variance, hybrid loss) sampled
by DDPM on respaced chains. Figures are against fresh true points (ppddpm.toy.metrics).

  python benchmarks/toy_quality.py                       # trains both models (~1 min each)
  python benchmarks/toy_quality.py --dataset swissroll --steps 1000,100,10
  python benchmarks/toy_quality.py --workdir DIR          # reuses DIR's trained models
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
from common import conditions  # noqa: E402

MODELS = {"simple": "toy.yaml", "hybrid": "toy_hybrid.yaml"}
# column -> (model, sampler kind, variance override)
COLUMNS = {
    "DDPM fixed_large": ("simple", "ddpm", "fixed_large"),
    "DDPM fixed_small": ("simple", "ddpm", "fixed_small"),
    "DDIM eta 0": ("simple", "ddim", None),
    "hybrid learned_range": ("hybrid", "ddpm", None),
}


def train(workdir, name, dataset, iters):
    """Train (unless already there) with the demo's settings; returns the EMA file."""
    from ppddpm.cli import main
    from ppddpm.config import load_config
    prefix = load_config(os.path.join(ROOT, "configs", MODELS[name])).train.ckpt_prefix
    d = os.path.join(workdir, name)
    ema = os.path.join(d, "ckpts", f"ddpm_{prefix}_i{iters}_ema.pdparam")
    if not os.path.exists(ema):
        start = time.perf_counter()
        argv = ["--config", os.path.join(ROOT, "configs", MODELS[name]), "--quiet",
                "--ckpt_dir", f"{d}/ckpts", "--sample_dir", f"{d}/sample", "--log_dir", f"{d}/log",
                "--training_iters", str(iters), "-o", f"data.dataset={dataset}"]
        if main(os.path.join(ROOT, "configs", "toy.yaml"), "train", argv=argv) != 0:
            raise SystemExit(f"training {name} failed")
        print(f"trained {name} in {time.perf_counter() - start:.0f} s", flush=True)
    return ema


def sampler_for(diffusion, kind, steps, var):
    from ppddpm.config import SampleConfig
    from ppddpm.diffusion import GaussianDiffusion
    from ppddpm.samplers import build_sampler
    if var is not None:
        diffusion = GaussianDiffusion(diffusion.betas, diffusion.mean_type, var, diffusion.loss_type)
    if kind == "ddim":
        return build_sampler(diffusion, SampleConfig(sampler="ddim", num_steps=steps))
    return build_sampler(diffusion, SampleConfig(sampler="ddpm", respacing=str(steps)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="gaussian25")
    p.add_argument("--steps", default="1000,250,100,50,20,10")
    p.add_argument("--num_points", type=int, default=5000)
    p.add_argument("--iters", type=int, default=2000, help="training iterations of each model")
    p.add_argument("--workdir", default="./toy_quality")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    from ppddpm.toy.metrics import quality
    from ppddpm.convert.pretrained import load_pretrained
    from ppddpm.data.toy import sample_toy
    from ppddpm.toy.output import sample_points

    print(f"conditions: {conditions()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", flush=True)
    loaded = {name: load_pretrained(train(args.workdir, name, args.dataset, args.iters))[:2]
              for name in MODELS}
    steps = [int(s) for s in args.steps.split(",")]
    rows = {}
    for s in steps:
        for col, (name, kind, var) in COLUMNS.items():
            model, diffusion = loaded[name]
            start = time.perf_counter()
            pts, _ = sample_points(model, sampler_for(diffusion, kind, s, var), args.num_points,
                                   args.num_points, seed=0)
            q = quality(pts, args.dataset)
            q.pop("mode_counts", None)
            q["seconds"] = round(time.perf_counter() - start, 1)
            rows.setdefault(s, {})[col] = q
            print(f"{s:5d} steps  {col:22s} " + ", ".join(
                f"{k} {v:.4f}" for k, v in q.items() if isinstance(v, float)), flush=True)
    truth = quality(sample_toy(args.dataset, args.num_points, seed=1, split="eval")[0], args.dataset)
    mixture = "frac_within_3sigma" in truth
    print(f"\n{args.dataset}, {args.num_points} samples per cell, sampling seed 0; "
          f"fresh true points: sliced W1 {truth['sliced_w1']:.4f}"
          + (f", {100 * truth['frac_within_3sigma']:.1f}% within 3 sigma" if mixture else ""))
    head = "| steps | " + " | ".join(COLUMNS) + " |"
    print(head + "\n|" + " --- |" * (len(COLUMNS) + 1))
    for s in steps:
        cells = []
        for col in COLUMNS:
            q = rows[s][col]
            cell = f"{q['sliced_w1']:.4f}"
            if mixture:
                cell = f"{100 * q['frac_within_3sigma']:.1f}% ({q['modes_covered']}), " + cell
            cells.append(cell)
        print(f"| {s} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"conditions": conditions(), "dataset": args.dataset, "truth": truth,
                       "rows": {str(k): v for k, v in rows.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
