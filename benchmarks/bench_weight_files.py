"""Reading an inference file of the CIFAR-10 UNet (35.7M weights): ppddpm's .safetensors
reader and its allow-list .pdparam loader side by side with plain ``paddle.load`` (the
unrestricted pickle they replace), in one run. Wall and CPU time, best of --reps.

    python benchmarks/bench_weight_files.py --reps 5
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def best_of(fn, reps: int):
    walls, cpus = [], []
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="repetitions; the best is reported")
    args = ap.parse_args()
    import paddle
    from ppddpm.config import load_config
    from ppddpm.diffusion import GaussianDiffusion
    from ppddpm.models import build_model
    from ppddpm.convert.pretrained import read_weight_file, save_inference_file

    cfg = load_config(os.path.join(os.path.dirname(HERE), "configs", "cifar10.yaml"))
    paddle.seed(0)
    state = build_model(cfg.model).state_dict()
    betas = GaussianDiffusion.from_config(cfg.diffusion).betas
    with tempfile.TemporaryDirectory() as tmp:
        files = {ext: save_inference_file(os.path.join(tmp, "net" + ext), state, betas, {}, cfg)
                 for ext in (".pdparam", ".safetensors")}
        size = os.path.getsize(files[".pdparam"]) / 2 ** 20
        rows = [("ppddpm .safetensors", lambda: read_weight_file(files[".safetensors"])),
                ("ppddpm .pdparam (allow-list loader)", lambda: read_weight_file(files[".pdparam"])),
                ("paddle.load .pdparam (unrestricted pickle)", lambda: paddle.load(files[".pdparam"]))]
        print(f"CIFAR-10 UNet inference file, {size:.0f} MiB; best of {args.reps}; "
              f"load: {os.getloadavg()[0]:.2f}")
        for name, fn in rows:
            wall, cpu = best_of(fn, args.reps)
            print(f"{name:44s} wall {wall:6.3f} s  cpu {cpu:6.3f} s")


if __name__ == "__main__":
    main()
