"""Make the README's sample grid and sequence picture with a short CPU run of a tiny set-up.

A 32x32 UNet (ch 32) trains for a few hundred iterations on the small generated image
tree of the tests (smooth colour gradients), then samples through the CLI. It shows the
pipeline end to end; it says nothing about sample quality on real data.

    python tools/make_readme_images.py [--iters 400] [--work /tmp/ppddpm_readme]
"""
import argparse
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from helpers_data import make_fake_image_tree  # noqa: E402

CONFIG = """\
base: {root}/configs/celeba_hq.yaml
data: {{image_size: 32, num_workers: 0}}
model: {{arch: unet, ch: 32, ch_mult: [1, 2, 2], num_res_blocks: 1, attn_resolutions: [16], resolution: 32}}
diffusion: {{num_diffusion_steps: 1000}}
train: {{batchsize: 7, training_iters: {iters}, warmup_steps: 50, lr: 0.001, lr_decay: constant,
        ema_decay: 0.99, sample_interval: 0, ckpt_interval: 0}}
sample: {{batchsize: 16}}
"""


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=400)
    p.add_argument("--work", default="/tmp/ppddpm_readme")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    make_fake_image_tree(os.path.join(args.work, "images"))
    cfg = os.path.join(args.work, "tiny.yaml")
    with open(cfg, "w") as fh:
        fh.write(CONFIG.format(root=ROOT, iters=args.iters))
    run = lambda script, *a: subprocess.run([sys.executable, os.path.join(ROOT, script), "--config", cfg, *a],
                                            cwd=args.work, check=True)
    run("run_celeba_hq.py", "--mode", "train", "--data_dir", "images")
    weights = os.path.join("ckpts", f"ddpm_celeba_hq_i{args.iters}_ema.pdparam")
    run("run_celeba_hq_ddim.py", "--pretrained_path", weights, "--num_images", "16-2-8", "--stride", "20")
    run("run_celeba_hq_ddim.py", "--pretrained_path", weights, "--num_images", "4-2-2", "--stride", "20",
        "--sequence", "True", "--sequence_every", "5")
    docs = os.path.join(ROOT, "docs")
    shutil.copy(os.path.join(args.work, "sample", "sample_ddim_celeba_hq_test.png"),
                os.path.join(docs, "tiny_samples.png"))
    shutil.copy(os.path.join(args.work, "sample", "sequence_ddim_celeba_hq_test.png"),
                os.path.join(docs, "tiny_sequence.png"))
    print("wrote docs/tiny_samples.png and docs/tiny_sequence.png")


if __name__ == "__main__":
    main()
