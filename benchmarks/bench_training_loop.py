"""Whole training iterations, ppddpm's Trainer against diffusers' UNet2DModel in a plain
PyTorch loop, side by side (train_loop_worker.py says what each side does). Each round runs
both sides once in fresh processes, the order alternating; the figures are the medians of
every timed iteration and their ratios, wall and CPU time (user + system, all threads).

Settings (issue 23): the digits UNet (16x16 RGB, ch 32, [1, 2], one block) at batch 64, the
MNIST config's UNet at batch 64 and the CIFAR-10 UNet at batch 8.

  python benchmarks/bench_training_loop.py                         # all three, 3 rounds
  python benchmarks/bench_training_loop.py --archs digits --rounds 5
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import PYTHONS, ROOT, conditions, summarize  # noqa: E402

SETTINGS = {"digits": 64, "mnist": 64, "cifar10": 8}
ITERS = {"digits": (3, 10), "mnist": (3, 8), "cifar10": (2, 4)}   # (warm-up, timed) per round


def run_side(side, arch, batch, threads, warmup, iters, baseline=None, timeout=3600):
    """One process of ``side``: ppddpm, diffusers, or "before" (ppddpm from the ``baseline``
    folder, e.g. an older commit's ``git archive``, with this worker copied into it)."""
    framework = "ppddpm" if side == "before" else side
    root = baseline if side == "before" else ROOT
    py = PYTHONS[framework]
    if py is None:
        return {"error": "no interpreter (set PEER_TORCH_PYTHON)"}
    cmd = [py, os.path.join(root, "benchmarks", "train_loop_worker.py"), "--framework", framework, "--arch", arch,
           "--batch", str(batch), "--threads", str(threads), "--warmup", str(warmup),
           "--iters", str(iters)]
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="digits,mnist,cifar10")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--baseline", default=None,
                   help="a folder holding an older ppddpm (with benchmarks/train_loop_worker.py): "
                        "measured too, as 'before'")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    print(f"conditions: {conditions()}; {args.threads} threads each", flush=True)
    rows, raw = [], {}
    for arch in args.archs.split(","):
        batch, (warmup, iters) = SETTINGS[arch], ITERS[arch]
        sides = ["ppddpm", "diffusers"] + (["before"] if args.baseline else [])
        results = {side: [] for side in sides}
        for r in range(args.rounds):
            order = sides[r % len(sides):] + sides[:r % len(sides)]
            for fw in order:
                res = run_side(fw, arch, batch, args.threads, warmup, iters, args.baseline)
                results[fw].append(res)
                print(f"  {arch} round {r + 1}/{args.rounds} {fw:9s} " + (res.get("error") or
                      f"median {1e3 * res['median_s']:.0f} ms wall, {1e3 * res['cpu_median_s']:.0f} ms CPU, "
                      f"{res['params']:,} parameters"), flush=True)
        raw[arch] = results
        s = summarize(results)
        if any("error" in v for v in s.values()):
            rows.append(f"| {arch}, batch {batch} | failed: {s} | | | | |")
            continue
        b = s["diffusers"]
        for name in [k for k in sides if k != "diffusers"]:
            a = s[name]
            rows.append(f"| {arch} UNet, batch {batch} ({a['params']:,} parameters), {name} | "
                        f"{1e3 * a['median_s']:.0f} ms | {1e3 * b['median_s']:.0f} ms | "
                        f"**{a['median_s'] / b['median_s']:.2f}** | {1e3 * a['cpu_median_s']:.0f} ms / "
                        f"{1e3 * b['cpu_median_s']:.0f} ms | **{a['cpu_median_s'] / b['cpu_median_s']:.2f}** | "
                        f"{a['maxrss_mb']:.0f} / {b['maxrss_mb']:.0f} MiB |")
    print(f"\nload average after the run: {open('/proc/loadavg').read().split()[:3]} "
          f"({time.strftime('%H:%M UTC', time.gmtime())})")
    print("| setting | ppddpm wall / iteration | diffusers wall | ppddpm / diffusers (wall) | "
          "CPU time ppddpm / diffusers | ppddpm / diffusers (CPU) | peak RSS ppddpm / diffusers |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
