"""Where an ONNX Runtime evaluation of the CIFAR-10 UNet spends its time (issue 17).

Exports the CIFAR-10 UNet (random weights, every layer non-zero) through ppddpm's ONNX
Runtime engine, then runs ONNX Runtime's own profiler on one batch, with the session ppddpm
uses (same threads, ORT_ENABLE_ALL, spinning as the engine's default), and prints the kernel
time per operator type. It also counts the convolutions' FLOPs (on the dynamic graph)
and measures this machine's single-precision matrix-multiply rate (numpy, 2048^3, the same
threads), so the table shows how far the compute-bound part is from the machine's rate and
how much of the evaluation is everything else.

  python benchmarks/profile_onnx.py --batch 16 --runs 5
"""
import argparse
import collections
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

COMPUTE_OPS = ("Conv", "FusedConv", "MatMul", "FusedMatMul", "Gemm")


def conv_flops(model, batch):
    """2 x multiply-adds of every Conv2D of ``model`` at this batch (forward hooks on the
    dynamic graph, so no shape inference is needed)."""
    import paddle
    total = [0]

    def hook(layer, inputs, output):
        k = layer.weight.shape   # [C_out, C_in / groups, kh, kw]
        total[0] += 2 * int(np.prod(output.shape)) * k[1] * k[2] * k[3]
    handles = [m.register_forward_post_hook(hook) for m in model.sublayers()
               if isinstance(m, paddle.nn.Conv2D)]
    model.eval()
    with paddle.no_grad():
        model(paddle.zeros([batch, 3, 32, 32]), paddle.zeros([batch], "int64"))
    for h in handles:
        h.remove()
    return total[0]


def matmul_rate(threads, n=2048, reps=5):
    """GFLOP/s of a float32 n x n x n matrix product (numpy's BLAS), best of ``reps``."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--runs", type=int, default=5, help="profiled evaluations (after one warm-up)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = p.parse_args()
    import onnxruntime as ort
    import worker
    from ppddpm.engines.onnx import ONNX_FILE, OnnxModel

    class Arch:
        arch = "cifar"
    _, model, _ = worker.ppddpm_setup(Arch, False)
    flops = conv_flops(model, args.batch)
    with tempfile.TemporaryDirectory(prefix="ppddpm-profile-") as tmp:
        engine = OnnxModel(model, [3, 32, 32], cache_dir=tmp, threads=args.threads, progress=False)
        onnx_path = os.path.join(engine.path, ONNX_FILE)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        opts.enable_profiling, opts.profile_file_prefix = True, os.path.join(tmp, "profile")
        session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
        rs = np.random.RandomState(0)
        feeds = {"x": rs.standard_normal((args.batch, 3, 32, 32)).astype(np.float32),
                 "t": rs.randint(0, 1000, args.batch).astype(np.int64)}
        session.run(None, feeds)
        walls = [_timed(lambda: session.run(None, feeds)) for _ in range(args.runs)]
        events = json.load(open(session.end_profiling()))
    per_op, count = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / 1e6 / (args.runs + 1)
            count[e["args"]["op_name"]] += 1
    total = sum(per_op.values())
    rate = matmul_rate(args.threads)
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print(f"CIFAR-10 UNet, batch {args.batch}, {args.threads} threads, onnxruntime {ort.__version__}: "
          f"median wall per evaluation {np.median(walls):.3f} s (profiling on); kernel time "
          f"{total:.3f} s\n")
    print("| operator | kernel time per evaluation | share | nodes |")
    print("| --- | --- | --- | --- |")
    for op, seconds in per_op.most_common():
        if seconds / total >= 0.002:
            print(f"| {op} | {seconds * 1000:.1f} ms | {100 * seconds / total:.1f}% | "
                  f"{count[op] // (args.runs + 1)} |")
    compute = sum(v for k, v in per_op.items() if k in COMPUTE_OPS)
    conv_time = sum(v for k, v in per_op.items() if k in ("Conv", "FusedConv"))
    print(f"\nconvolutions: {flops / 1e9:.1f} GFLOP in {conv_time * 1000:.0f} ms = "
          f"{flops / conv_time / 1e9:.0f} GFLOP/s")
    print(f"this machine's float32 matrix product (numpy, 2048^3, {args.threads} threads): "
          f"{rate:.0f} GFLOP/s")
    print(f"convolutions + matrix products: {100 * compute / total:.1f}% of the kernel time; "
          f"everything else {(total - compute) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
