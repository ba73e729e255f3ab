"""Matrix products of the UNets' attention and linear layers, forward + backward, side by side:
Paddle's own ``matmul`` (what training used before issue 23's oneDNN products), ppddpm's
oneDNN products (``models/matmul.py``) and PyTorch's, each in a fresh process, the order
alternating over rounds; the medians and ratios of wall and CPU time.

  python benchmarks/bench_matmul.py                 # 2 threads each, 3 rounds
  python benchmarks/bench_matmul.py --threads 1
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import PYTHONS, ROOT, conditions  # noqa: E402
from train_loop_worker import timed_iterations  # noqa: E402

# name -> (a shape, b shape, transpose b, b is a weight: the product of a linear layer)
CASES = {
    "CIFAR-10 attention qkv: [8, 256, 256] x [256, 768]": ([8, 256, 256], [256, 768], False, True),
    "CIFAR-10 attention q k^T: [8, 256, 256] x [8, 256, 256]^T": ([8, 256, 256], [8, 256, 256], True, False),
    "MNIST attention qkv: [64, 196, 64] x [64, 192]": ([64, 196, 64], [64, 192], False, True),
    "MNIST attention q k^T: [64, 196, 64] x [64, 196, 64]^T": ([64, 196, 64], [64, 196, 64], True, False),
    "digits middle qkv: [64, 64, 64] x [64, 192]": ([64, 64, 64], [64, 192], False, True),
}
SIDES = ("paddle", "ppddpm", "torch")


def timed(fn, reps):
    """Median wall and CPU seconds of ``reps`` calls after 3 warm-up calls."""
    walls, cpus = timed_iterations(fn, 3, reps)
    return statistics.median(walls), statistics.median(cpus)


def worker(side, reps):
    """Runs in the child: every case once, forward + backward of sum(y * g)."""
    out = {}
    if side == "torch":
        import torch
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        for name, (sa, sb, tb, _) in CASES.items():
            a, b = torch.randn(sa, requires_grad=True), torch.randn(sb, requires_grad=True)
            g = torch.randn(torch.matmul(a, b.transpose(-1, -2) if tb else b).shape)

            def step():
                y = torch.matmul(a, b.transpose(-1, -2) if tb else b)
                y.backward(g)
            out[name] = timed(step, reps)
        return out
    import paddle
    from ppddpm.models.conv import set_conv_backend
    from ppddpm.models.matmul import Linear, batched_matmul
    from ppddpm.runtime.device import use_compute_threads
    use_compute_threads()
    set_conv_backend("paddle" if side == "paddle" else "auto")
    for name, (sa, sb, tb, weight) in CASES.items():
        a = paddle.randn(sa)
        a.stop_gradient = False
        if weight:
            layer = Linear(sb[0], sb[1], bias_attr=False)
            g = paddle.randn(sa[:-1] + [sb[1]])

            def step():
                layer(a).backward(g)
        else:
            b = paddle.randn(sb)
            b.stop_gradient = False
            g = paddle.randn([sa[0], sa[1], sb[1] if tb else sb[2]])

            def step():
                batched_matmul(a, b, transpose_y=tb).backward(g)
        out[name] = timed(step, reps)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        sys.stdout.write("RESULT " + json.dumps(worker(args.worker, args.reps)) + "\n")
        return
    print(f"conditions: {conditions()}; {args.threads} threads each", flush=True)
    results = {side: [] for side in SIDES}
    for r in range(args.rounds):
        order = SIDES[r % 3:] + SIDES[:r % 3]
        for side in order:
            py = PYTHONS["diffusers" if side == "torch" else "ppddpm"]
            env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS=str(args.threads))
            proc = subprocess.run([py, __file__, "--worker", side, "--reps", str(args.reps)],
                                  env=env, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                sys.exit(f"{side}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
            results[side].append(json.loads(line[0][7:]))
    print("| product (forward + backward) | Paddle's matmul, wall / CPU ms | ppddpm oneDNN | "
          "PyTorch | ppddpm / Paddle (wall) | ppddpm / PyTorch (wall, CPU) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in CASES:
        med = {s: [statistics.median(run[name][i] * 1e3 for run in results[s]) for i in (0, 1)]
               for s in SIDES}
        print(f"| {name} | {med['paddle'][0]:.2f} / {med['paddle'][1]:.2f} | "
              f"{med['ppddpm'][0]:.2f} / {med['ppddpm'][1]:.2f} | "
              f"{med['torch'][0]:.2f} / {med['torch'][1]:.2f} | "
              f"{med['ppddpm'][0] / med['paddle'][0]:.2f} | "
              f"{med['ppddpm'][0] / med['torch'][0]:.2f}, {med['ppddpm'][1] / med['torch'][1]:.2f} |")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
