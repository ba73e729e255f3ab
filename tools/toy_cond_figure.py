"""Make docs/toy_cond_guidance.png: a class-conditional DDPM on gaussian8 (configs/toy_cond.yaml,
each mode a class), sampled per class at several guidance scales, one colour per class.

    python tools/toy_cond_figure.py [--out docs/toy_cond_guidance.png] [--iters 2000]

It trains with the run script's own entry point (about a minute on 2 CPU cores), then
samples 50 points of every class with DDPM (1000 steps) at each guidance scale through
``sampler.sample(model, shape, seed, y=labels, guidance_scale=w)``, and prints the figures.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppddpm.cli import main  # noqa: E402
from ppddpm.data.toy import mixture_spec  # noqa: E402
from ppddpm.toy.metrics import requested_mode_stats  # noqa: E402
from ppddpm.convert.pretrained import load_pretrained  # noqa: E402
from ppddpm.samplers import DDPMSampler  # noqa: E402

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (23, 190, 207)]
SIZE, LIM = 300, 1.0


def panel(points, labels, title, caption):
    img = Image.new("RGB", (SIZE, SIZE + 40), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, SIZE - 1, SIZE - 1], outline=(150, 150, 150))
    for (x, y), k in zip(points, labels):
        c, r = (x + LIM) / (2 * LIM) * SIZE, (LIM - y) / (2 * LIM) * SIZE
        draw.ellipse([c - 2, r - 2, c + 2, r + 2], fill=COLOURS[int(k) % len(COLOURS)])
    font = ImageFont.load_default()
    draw.text((6, 4), title, fill=(40, 40, 40), font=font)
    draw.text((6, SIZE + 6), caption, fill=(40, 40, 40), font=font)
    return img


def main_figure():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "toy_cond_guidance.png"))
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--scales", default="0,1,3")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="toy_cond_")
    config = os.path.join(ROOT, "configs", "toy_cond.yaml")
    code = main(config, "toy_cond", argv=[
        "--config", config, "--training_iters", str(args.iters), "--ckpt_dir", f"{work}/ckpts",
        "--sample_dir", f"{work}/sample", "--log_dir", f"{work}/log", "--num_images", "16-8-2",
        "--respacing", "20", "--quiet"])
    if code:
        sys.exit(code)
    model, diffusion, _ = load_pretrained(f"{work}/ckpts/ddpm_toy_cond_i{args.iters}_ema.pdparam")
    sampler = DDPMSampler(diffusion)
    labels = np.repeat(np.arange(8), 50)
    means, std = mixture_spec("gaussian8")
    panels = []
    for w in (float(s) for s in args.scales.split(",")):
        x = sampler.sample(model, [len(labels), 2, 1, 1], seed=0, y=labels, guidance_scale=w,
                           progress=False).numpy().reshape(-1, 2)
        q = requested_mode_stats(x, labels, means, std)
        line = (f"w={w:g}: {100 * q['frac_in_requested_mode']:.1f}% in requested mode, "
                f"{100 * q['frac_within_3sigma_of_requested']:.1f}% within 3 sigma, "
                f"spread {q['spread_rms']:.4f} (data {q['true_spread_rms']:.4f})")
        print(line)
        panels.append(panel(x, labels, f"guidance w = {w:g}",
                            f"{100 * q['frac_within_3sigma_of_requested']:.1f}% within 3 sigma\n"
                            f"spread {q['spread_rms']:.3f} (data {q['true_spread_rms']:.3f})"))
    foot = (f"gaussian8, 50 points per class (colour = requested class); {args.iters} iterations "
            "of configs/toy_cond.yaml on CPU; DDPM 1000 steps; tools/toy_cond_figure.py")
    out = Image.new("RGB", (len(panels) * (SIZE + 8) + 8, SIZE + 40 + 36), (255, 255, 255))
    for i, im in enumerate(panels):
        out.paste(im, (8 + i * (SIZE + 8), 8))
    ImageDraw.Draw(out).text((8, SIZE + 56), foot, fill=(40, 40, 40), font=ImageFont.load_default())
    out.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main_figure()
