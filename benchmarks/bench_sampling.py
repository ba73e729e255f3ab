"""Sampling speed and memory, side by side, per network evaluation and per whole process.

Per network evaluation (no grad): ppddpm's engines (ONNX Runtime, the Paddle Inference
predictor, the dynamic graph) against diffusers on PyTorch, with its default OpenMP wait and
with OMP_WAIT_POLICY=PASSIVE, at several batch sizes, on the CIFAR-10 UNet (35.7M
parameters) and a small 16x16 UNet (651K). Each measurement is a fresh process; the order
rotates every round.

Whole process (--process): from a weights file on disk to PNG files, through ppddpm's command
line (first call with an empty engine cache, so export and check included; warm call with the
cache filled) and diffusers' DDIMPipeline: wall time, CPU time and peak RSS.

  python benchmarks/bench_sampling.py                                   # steps, 2 rounds
  python benchmarks/bench_sampling.py --batches 16 --archs cifar --reps 3
  python benchmarks/bench_sampling.py --no-steps --process              # whole processes
  python benchmarks/bench_sampling.py --ddim --ddim_reps 2              # + DDIM 100 x 16 in-process
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (HERE, PYTHONS, alternate, conditions, run_process, save_json,  # noqa: E402
                    summarize, table)

PEERS = ("diffusers", "diffusers-passive")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frameworks", default="ppddpm-onnx,ppddpm,diffusers,diffusers-passive")
    p.add_argument("--archs", default="cifar,small")
    p.add_argument("--batches", default="1,16,64")
    p.add_argument("--reps", type=int, default=2, help="rounds (one fresh process per framework each)")
    p.add_argument("--steps", type=int, default=0, help="timed network calls per round "
                   "(default: about 3 s of work, at least 3)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="CPU threads for every framework (default: the available cores)")
    p.add_argument("--no-steps", dest="run_steps", action="store_false",
                   help="skip the per-evaluation measurements")
    p.add_argument("--process", action="store_true", help="also time whole processes")
    p.add_argument("--process_reps", type=int, default=2)
    p.add_argument("--process_cases", default="cifar:16:16:10,small:500:500:50,cifar:64:64:3",
                   help="arch:images:batch:DDIM steps, comma-separated")
    p.add_argument("--ddim", action="store_true", help="also time in-process DDIM sampling")
    p.add_argument("--ddim_frameworks", default="ppddpm-onnx,diffusers")
    p.add_argument("--ddim_reps", type=int, default=2)
    p.add_argument("--ddim_steps", type=int, default=100)
    p.add_argument("--json", default=None, help="write all raw results here")
    args = p.parse_args()
    cache = tempfile.mkdtemp(prefix="ppddpm-bench-engines-")   # round 1 exports, later rounds load
    try:
        run(args, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def versus_better_peer(summary):
    """Each framework's median over the faster of diffusers' two OpenMP settings."""
    peers = [summary[f]["median_s"] for f in PEERS if "median_s" in summary.get(f, {})]
    if not peers:
        return ""
    best = min(peers)
    return "; ".join(f"{f} {s['median_s'] / best:.2f}x" for f, s in summary.items() if "median_s" in s)


def default_steps(arch, batch):
    """About 3 s of work per round on this machine, at least 3 calls."""
    per_image = 0.045 if arch == "cifar" else 0.0012
    return max(3, min(20, int(3.0 / (per_image * batch + 0.005))))


def run(args, cache):
    print(f"conditions: {conditions()}; threads {args.threads}", flush=True)
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    flags = sorted({f for line in open("/proc/cpuinfo") if line.startswith("flags")
                    for f in line.split(":")[1].split() if f.startswith(("avx", "fma", "amx"))})
    print(f"CPU flags: {' '.join(flags)}", flush=True)
    fws = args.frameworks.split(",")
    raw = {}
    for arch in (args.archs.split(",") if args.run_steps else []):
        for batch in [int(b) for b in args.batches.split(",")]:
            steps = args.steps or default_steps(arch, batch)
            title = f"one network evaluation, {arch}, batch {batch}"
            print(f"{title}:", flush=True)
            res = alternate(fws, args.reps, log=lambda m: print(m, flush=True), task="sample_step",
                            threads=args.threads, paddle_omp=args.threads, batch=batch,
                            steps=steps, warmup=args.warmup, cache_dir=cache, arch=arch)
            raw[f"step/{arch}/{batch}"] = res
            summary = summarize(res)
            print(table(summary, "diffusers", title, mem=True), flush=True)
            print(f"  against the better diffusers setting: {versus_better_peer(summary)}", flush=True)
    if args.process:
        raw["process"] = run_processes(args)
    if args.ddim:
        fws = args.ddim_frameworks.split(",")
        print(f"DDIM {args.ddim_steps} steps, 16 images:", flush=True)
        raw["ddim"] = alternate(fws, args.ddim_reps, log=lambda m: print(m, flush=True), task="ddim",
                                threads=args.threads, paddle_omp=args.threads, batch=16,
                                steps=1, warmup=0, ddim_steps=args.ddim_steps, cache_dir=cache)
        print(table(summarize(raw["ddim"]), "diffusers",
                    f"DDIM {args.ddim_steps} steps, 16 images"), flush=True)
    if args.json:
        save_json(args.json, raw)


def run_processes(args):
    """Whole processes, rounds alternating: ppddpm first call (empty engine cache), ppddpm
    warm call (cache kept from its first call), diffusers with both OpenMP wait policies."""
    out = {}
    script = os.path.join(HERE, "whole_process.py")
    cases = [c.split(":") for c in args.process_cases.split(",")]
    for arch, n, batch, steps in ((a, int(n), int(b), int(k)) for a, n, b, k in cases):
        work = tempfile.mkdtemp(prefix="ppddpm-bench-process-")
        try:
            for fw in ("ppddpm", "diffusers"):
                subprocess.run([PYTHONS[fw], script, "save", "--framework", fw, "--arch", arch,
                                "--out", work], check=True, capture_output=True,
                               env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
            kinds = ["ppddpm first", "ppddpm warm", "diffusers", "diffusers-passive"]
            res = {k: [] for k in kinds}
            for r in range(args.process_reps):
                cache = os.path.join(work, f"cache{r}")
                order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
                # the warm call needs the first call's cache: keep first before warm
                order.sort(key=lambda k: (k == "ppddpm warm" and "ppddpm first" in order and
                                          order.index("ppddpm first") > order.index(k)))
                for kind in order:
                    fw = "diffusers" if kind.startswith("diffusers") else "ppddpm"
                    env = {"PPDDPM_ENGINE_CACHE": cache}
                    if kind == "diffusers-passive":
                        env["OMP_WAIT_POLICY"] = "PASSIVE"
                    got = run_process([PYTHONS[fw], script, "sample", "--framework", fw,
                                       "--arch", arch, "--out", work, "--n", str(n), "--batch",
                                       str(batch), "--steps", str(steps)], env)
                    res[kind].append(got)
                    print(f"  {arch} {n} images DDIM {steps}, round {r + 1}: {kind:18s} {got}", flush=True)
            out[f"{arch}/{n}/{steps}"] = res
            print(process_table(res, f"whole process, {arch}, {n} images, DDIM {steps}"), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def process_table(res, title):
    med = {k: {m: statistics.median(r[m] for r in v if "error" not in r) for m in
               ("wall_s", "cpu_s", "maxrss_mb")} for k, v in res.items()
           if any("error" not in r for r in v)}
    best = min(med[k]["wall_s"] for k in PEERS if k in med) if any(k in med for k in PEERS) else None
    lines = [f"| {title} | median wall | / better diffusers | median CPU time | peak RSS |",
             "| --- | --- | --- | --- | --- |"]
    for k, v in res.items():
        if k not in med:
            lines.append(f"| {k} | failed: {v[0].get('error')} | | | |")
            continue
        m = med[k]
        ratio = f"{m['wall_s'] / best:.2f}" if best else "-"
        lines.append(f"| {k} | {m['wall_s']:.1f} s | {ratio} | {m['cpu_s']:.1f} s | "
                     f"{m['maxrss_mb'] / 1024:.2f} GiB |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
