"""The README's editing pictures, made by a small model trained on real data: scikit-learn's
8x8 handwritten digits (1797 images of the UCI set, shipped inside scikit-learn), scaled to
16x16 and written as PNG folders, a ppddpm UNet trained on them with ppddpm's own command
line, then every editing mode run on held-out digits. scikit-learn is needed by this script
only (pip install scikit-learn into any venv), never by ppddpm.

    python tools/digits_edit_demo.py [--iters 1500] [--work /tmp/ppddpm_digits] [--threads 1]

It prints each command as it runs it, the encode reconstruction table, and copies the
pictures (enlarged 4x, nearest neighbour) to docs/edit/. The weights stay in --work.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_TRAIN = 1500          # the rest (297) is held out for the edits
SIZE = 16
MODEL = ["-o", "data.dataset=folder", "data.channels=1", f"data.image_size={SIZE}",
         "model.ch=32", "model.ch_mult=[1,2]", "model.attn_resolutions=[]",
         "model.num_res_blocks=1", "model.norm_groups=8", "model.dropout=0.0"]


def write_digits(work: str) -> None:
    """digits/train/*.png and digits/test/*.png (grey 16x16), the first 8 and 64 test digits
    in digits/some/ and digits/table/, and the inpainting mask (the bottom half is generated)."""
    from sklearn.datasets import load_digits   # the data only; not a ppddpm dependency
    digits = load_digits()
    for split, rows in (("train", range(N_TRAIN)), ("test", range(N_TRAIN, len(digits.images)))):
        os.makedirs(os.path.join(work, "digits", split), exist_ok=True)
        for i in rows:
            im = Image.fromarray(np.round(digits.images[i] * 255 / 16).astype(np.uint8), "L")
            im.resize((SIZE, SIZE), Image.Resampling.BICUBIC).save(
                os.path.join(work, "digits", split, f"{i:04d}.png"))
    for name, count in (("some", 8), ("table", 64)):   # the pictures' and the table's inputs
        os.makedirs(os.path.join(work, "digits", name), exist_ok=True)
        for k, i in enumerate(range(N_TRAIN, N_TRAIN + count)):
            shutil.copy(os.path.join(work, "digits", "test", f"{i:04d}.png"),
                        os.path.join(work, "digits", name, f"{k:02d}.png"))
    mask = np.full((SIZE, SIZE), 255, np.uint8)
    mask[SIZE // 2:] = 0
    Image.fromarray(mask, "L").save(os.path.join(work, "digits", "mask_bottom.png"))


def ppddpm(work: str, threads: int, *args) -> None:
    cmd = [sys.executable, os.path.join(ROOT, "run_mnist.py"), *args]
    print("$ " + " ".join(cmd[1:]).replace(ROOT + "/", ""), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=ROOT)
    subprocess.run(cmd, cwd=work, env=env, check=True)


def enlarge(src: str, dst: str, factor: int = 4) -> None:
    im = Image.open(src)
    im.resize((im.width * factor, im.height * factor), Image.Resampling.NEAREST).save(dst)
    print(f"docs: {os.path.relpath(dst, ROOT)}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=1500)
    p.add_argument("--work", default="/tmp/ppddpm_digits")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (a shared machine: 1)")
    p.add_argument("--skip_training", action="store_true", help="reuse the weights in --work")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    run = lambda *a: ppddpm(args.work, args.threads, *a)
    if not args.skip_training:
        write_digits(args.work)
        run("--mode", "train", *MODEL, "--data_dir", "digits/train", "--num_workers", "0",
            "--training_iters", str(args.iters), "--batchsize", "32", "--warmup_steps", "200",
            "--lr", "0.001", "--ckpt_interval", str(args.iters), "--sample_interval", "0",
            "--overwrite", "True")
        run("--mode", "convert", *MODEL)
    weights = sorted(glob.glob(os.path.join(args.work, "ckpts", "ddpm_mnist_i*_ema.pdparam")),
                     key=os.path.getmtime)[-1]
    common = ["--pretrained_path", weights, "--sample_dir", "edits", "--batchsize", "16"]
    docs = os.path.join(ROOT, "docs", "edit")
    os.makedirs(docs, exist_ok=True)
    run("--mode", "denoise", *common, "--sampler", "ddim", "--steps", "50", "--num_images",
        "32-4-8", "--sample_postfix", "digits")
    enlarge(os.path.join(args.work, "edits", "sample_digits.png"), os.path.join(docs, "samples.png"))
    for steps in (10, 20, 50, 100, 200):
        run("--mode", "encode", *common, "--init_image", "digits/table", "--steps", str(steps),
            "--sample_postfix", f"digits_{steps}")
    enlarge(os.path.join(args.work, "edits", "encode_digits_50.png"), os.path.join(docs, "encode.png"))
    run("--mode", "interpolate", *common, "--steps", "50", "--endpoints", "digits/some/01.png,"
        "digits/some/07.png", "--frames", "10", "--sample_postfix", "digits")
    enlarge(os.path.join(args.work, "edits", "interpolate_digits.png"),
            os.path.join(docs, "interpolate.png"))
    for strength in ("0.3", "0.5", "0.7"):
        run("--mode", "img2img", *common, "--init_image", "digits/some", "--sampler", "ddim",
            "--steps", "50", "--strength", strength, "--sample_postfix", "digits")
        enlarge(os.path.join(args.work, "edits", f"img2img_digits_s{strength}.png"),
                os.path.join(docs, f"img2img_s{strength}.png"))
    for n_sample in (1, 10):
        run("--mode", "inpaint", *common, "--init_image", "digits/some", "--mask",
            "digits/mask_bottom.png", "--respacing", "250", "--var_type", "fixed_small",
            "--jump_length", "10",
            "--jump_n_sample", str(n_sample), "--sample_postfix", f"digits_r{n_sample}")
        enlarge(os.path.join(args.work, "edits", f"inpaint_digits_r{n_sample}.png"),
                os.path.join(docs, f"inpaint_r{n_sample}.png"))


if __name__ == "__main__":
    main()
