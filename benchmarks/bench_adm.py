"""The adm networks per network evaluation: ppddpm's engines (ONNX Runtime, the Paddle
Inference predictor) against upstream's own PyTorch code (improved-diffusion's and
guided-diffusion's UNetModel), on the Improved-DDPM CIFAR-10 network (52.5M parameters,
32x32) and guided-diffusion's ImageNet 64x64 network, at batch 1 and 16. Each measurement is
a fresh process; the order of the frameworks rotates every round; wall and CPU time
(all threads) per call, as ratios to PyTorch.

  python benchmarks/bench_adm.py --improved GIT_DIR --guided GIT_DIR            # 2 rounds
  python benchmarks/bench_adm.py ... --nets cifar --batches 1 --reps 1
(GIT_DIR: a bare git directory or a checkout of openai/improved-diffusion and
openai/guided-diffusion; the code is imported, nothing is copied.)
"""
import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import PYTHONS, ROOT, conditions, summarize, table  # noqa: E402

# net -> (upstream package, upstream flags as their READMEs write them)
NETS = {
    "cifar": ("improved_diffusion", "--image_size 32 --num_channels 128 --num_res_blocks 3 "
              "--learn_sigma True --dropout 0.3 --diffusion_steps 4000 --noise_schedule cosine"),
    "adm64": ("guided_diffusion", "--attention_resolutions 32,16,8 --class_cond True "
              "--diffusion_steps 1000 --dropout 0.1 --image_size 64 --learn_sigma True "
              "--noise_schedule cosine --num_channels 192 --num_head_channels 64 "
              "--num_res_blocks 3 --resblock_updown True --use_new_attention_order True "
              "--use_scale_shift_norm True"),
}
# ppddpm's engines, and upstream's PyTorch code with OpenMP's default wait and with idle
# threads sleeping (OMP_WAIT_POLICY=PASSIVE, faster for PyTorch on a loaded machine)
FRAMEWORKS = {"ppddpm-onnx": "onnxruntime", "ppddpm": "inference", "upstream-torch": None,
              "upstream-torch-passive": None}


def worker(args):
    """One framework, one net, one batch: RESULT {times, cpu_times, ...} on stdout."""
    package, flags = NETS[args.net]
    size = int(shlex.split(flags)[shlex.split(flags).index("--image_size") + 1])
    extra = {}
    if args.framework.startswith("upstream-torch"):
        sys.path.insert(0, args.upstream)
        import importlib
        import numpy as np
        import torch as th
        th.set_num_threads(args.threads)
        script = importlib.import_module(f"{package}.script_util")
        defaults = script.model_and_diffusion_defaults()
        parser = argparse.ArgumentParser()
        script.add_dict_to_argparser(parser, defaults)
        values = script.args_to_dict(parser.parse_args(shlex.split(flags)), defaults.keys())
        net, _ = script.create_model_and_diffusion(**values)
        net.eval()
        params = sum(p.numel() for p in net.parameters())
        x = th.randn(args.batch, 3, size, size)
        t = th.randint(0, 1000, (args.batch,))
        kw = {"y": th.randint(0, 1000, (args.batch,))} if values["class_cond"] else {}

        def call():
            with th.no_grad():
                return net(x, t, **kw)
        extra["torch"] = th.__version__
    else:
        import paddle
        from ppddpm.convert.adm_flags import flags_config, parse_flags
        from ppddpm.engines import make_engine
        from ppddpm.models import build_model
        family = package.replace("_", "-")
        cfg = flags_config(parse_flags(flags, family), family)
        net = build_model(cfg.model)
        params = sum(int(p.numel()) for p in net.parameters())
        t0 = time.perf_counter()
        engine = make_engine(net, FRAMEWORKS[args.framework], image_shape=[3, size, size],
                             cache_dir=args.cache, threads=args.threads, keep_model=False,
                             progress=False)
        extra["engine_setup_s"] = round(time.perf_counter() - t0, 1)
        x = paddle.randn([args.batch, 3, size, size])
        t = paddle.randint(0, 1000, [args.batch])
        kw = {"y": paddle.randint(0, 1000, [args.batch])} if cfg.model.num_classes else {}

        def call():
            return engine(x, t, **kw)
    for _ in range(args.warmup):
        call()
    times, cpu = [], []
    for _ in range(args.steps):
        w0, c0 = time.perf_counter(), time.process_time()
        call()
        times.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    times_sorted = sorted(times)
    print("RESULT " + json.dumps({
        "framework": args.framework, "times": times, "cpu_times": cpu,
        "median_s": times_sorted[len(times) // 2], "params": params, "extra": extra,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}), flush=True)


def measure(framework, net, batch, args, upstream, cache):
    py = PYTHONS["diffusers"] if framework.startswith("upstream-torch") else PYTHONS["ppddpm"]
    cmd = [py, os.path.abspath(__file__), "--worker", "--framework", framework, "--net", net,
           "--batch", str(batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--upstream", upstream, "--cache", cache]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS=str(args.threads))
    if framework == "upstream-torch-passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=7200)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"framework": framework,
            "error": f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"}


def export(source, package, dest):
    if os.path.isdir(os.path.join(source, package)):
        os.symlink(os.path.join(os.path.abspath(source), package), os.path.join(dest, package))
        return
    tar = subprocess.run(["git", "--git-dir", source, "archive", "HEAD", package],
                         check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=tar, check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--framework", help=argparse.SUPPRESS)
    p.add_argument("--net", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--upstream", help=argparse.SUPPRESS)
    p.add_argument("--cache", help=argparse.SUPPRESS)
    p.add_argument("--improved", help="openai/improved-diffusion (git dir or checkout)")
    p.add_argument("--guided", help="openai/guided-diffusion (git dir or checkout)")
    p.add_argument("--nets", default="cifar,adm64")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    p.add_argument("--reps", type=int, default=2, help="rounds (one fresh process each)")
    p.add_argument("--steps", type=int, default=3, help="timed calls per process")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = p.parse_args()
    if args.worker:
        return worker(args)
    upstream = tempfile.mkdtemp(prefix="adm-upstream-")
    export(args.improved, "improved_diffusion", upstream)
    export(args.guided, "guided_diffusion", upstream)
    cache = tempfile.mkdtemp(prefix="adm-engines-")   # round 1 exports, later rounds load
    frameworks = args.frameworks.split(",")
    print(f"conditions: {conditions()}, {args.threads} threads, {args.steps} timed calls "
          f"after {args.warmup} warm-up per process")
    for net in args.nets.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            results = {f: [] for f in frameworks}
            for r in range(args.reps):
                order = frameworks[r % len(frameworks):] + frameworks[:r % len(frameworks)]
                for f in order:
                    res = measure(f, net, batch, args, upstream, cache)
                    results[f].append(res)
                    print(f"  {net} batch {batch} round {r + 1} {f}: "
                          + (res.get("error") or f"median {res['median_s']:.3f} s"), flush=True)
            summary = summarize(results)
            params = next((s["params"] for s in summary.values() if s.get("params")), "?")
            print()
            print(table(summary, "upstream-torch",
                        f"{net} ({params:,} params), batch {batch}" if params != "?" else net))
            print()


if __name__ == "__main__":
    main()
