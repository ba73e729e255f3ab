"""OpenVINO on ppddpm's ONNX file against ONNX Runtime, side by side in one process (issue 17).

The issue asks to add OpenVINO only if it clearly beats ONNX Runtime on the same ONNX file,
without a fixed-batch rewrite. This script exports the CIFAR-10 UNet (random weights, every
layer non-zero) through ppddpm's ONNX Runtime engine, compiles the very same ``model.onnx``
with OpenVINO (dynamic batch, CPU, the same number of threads, latency hint), checks that both
outputs agree with the dynamic graph, and then times one network evaluation of each,
alternating in rounds, at several batch sizes: wall and CPU time, median of the rounds.

  pip install openvino            # not a ppddpm dependency; only this script needs it
  python benchmarks/bench_openvino.py --batches 1,16,64 --rounds 5
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))


def build(threads, cache):
    import worker
    from ppddpm.engines.onnx import OnnxModel

    class Args:
        arch = "cifar"
    paddle, model, params = worker.ppddpm_setup(Args, False)
    model.eval()   # no dropout in the reference outputs
    ort_engine = OnnxModel(model, [3, 32, 32], cache_dir=cache, threads=threads, progress=False)
    return paddle, model, ort_engine


def openvino_model(onnx_path, threads):
    import openvino as ov
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
              "NUM_STREAMS": 1}
    return core.compile_model(core.read_model(onnx_path), "CPU", config), ov.__version__


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", default="1,16,64")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = p.parse_args()
    try:
        import openvino  # noqa: F401  (only: is it installed?)
    except ImportError:
        sys.exit("this benchmark needs OpenVINO: pip install openvino")
    import onnxruntime
    with tempfile.TemporaryDirectory(prefix="ppddpm-ov-") as cache:
        paddle, model, ort_engine = build(args.threads, cache)
        ov_model, ov_version = openvino_model(os.path.join(ort_engine.path, "model.onnx"),
                                              args.threads)
        print(f"uptime: {os.popen('uptime').read().strip()}")
        print(f"onnxruntime {onnxruntime.__version__}, openvino {ov_version}, "
              f"{platform.processor() or platform.machine()}, {args.threads} threads\n")
        rs = np.random.RandomState(0)
        print("| batch | ONNX Runtime wall / CPU | OpenVINO wall / CPU | OpenVINO / ONNX Runtime (wall, CPU) | max diff to dygraph (ORT, OV) |")
        print("| --- | --- | --- | --- | --- |")
        for batch in [int(b) for b in args.batches.split(",")]:
            x = rs.standard_normal((batch, 3, 32, 32)).astype(np.float32)
            t = rs.randint(0, 1000, batch).astype(np.int64)
            with paddle.no_grad():
                want = model(paddle.to_tensor(x[:2]), paddle.to_tensor(t[:2])).numpy()
            runs = {
                # the engine as the sampler calls it (micro-batched, as ppddpm samples)
                "ort": lambda: ort_engine(x, t).numpy(),
                "ov": lambda: ov_model({"x": x, "t": t})[0],
            }
            diffs = {k: float(np.abs(f()[:2] - want).max()) for k, f in runs.items()}
            times = {k: ([], []) for k in runs}
            for r in range(args.rounds):
                for k in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
                    c0, t0 = time.process_time(), time.perf_counter()
                    runs[k]()
                    times[k][0].append(time.perf_counter() - t0)
                    times[k][1].append(time.process_time() - c0)
            med = {k: (statistics.median(w), statistics.median(c)) for k, (w, c) in times.items()}
            print(f"| {batch} | {med['ort'][0]:.3f} s / {med['ort'][1]:.3f} s | "
                  f"{med['ov'][0]:.3f} s / {med['ov'][1]:.3f} s | "
                  f"{med['ov'][0] / med['ort'][0]:.2f}, {med['ov'][1] / med['ort'][1]:.2f} | "
                  f"{diffs['ort']:.1e}, {diffs['ov']:.1e} |", flush=True)


if __name__ == "__main__":
    main()
