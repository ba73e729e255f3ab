"""Build tests/fixtures/diffusers_tiny: a small diffusers UNet2DModel with the DDPM
architecture (config semantics of google/ddpm-cifar10-32), random weights, and its outputs.

Needs torch + diffusers (optional, never needed by ppddpm or its tests), e.g.
    python3 -m venv /work/venv-ref && /work/venv-ref/bin/pip install torch diffusers numpy safetensors
    /work/venv-ref/bin/python tools/make_diffusers_fixture.py

Files: unet/config.json, unet/diffusion_pytorch_model.safetensors (F16 weights),
scheduler/scheduler_config.json, io.npz with x, t, out (this model), out_flip (same
weights, config flip_sin_to_cos=true, freq_shift=0), class_embedding, y, out_class
(same weights plus a class embedding, num_class_embeds=5).

--what variants writes tests/fixtures/diffusers_variants/<name>/ instead: the UNet2DModel
settings beyond the DDPM UNet that ppddpm expresses (VARIANTS below), each with its own
random weights, unet/ and io.npz (x, t, y, out).
"""
import argparse
import os

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures", "diffusers_tiny")

ARCH = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(16, 32),
            layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, norm_eps=1e-6,
            attention_head_dim=None, act_fn="silu", time_embedding_type="positional",
            flip_sin_to_cos=False, freq_shift=1, downsample_padding=0, mid_block_scale_factor=1,
            center_input_sample=False)


def randomise(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Non-zero weights everywhere (including the layers DDPM zero-initialises),
    scaled by fan-in so that activations stay O(1); then rounded to float16."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name and name.endswith("weight"):
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
            elif p.ndim == 1:
                v = 0.1 * torch.randn(p.shape, generator=gen)
            else:
                v = torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5   # fan-in
            p.copy_(v.half().float())


def run(model, x, t, y=None):
    with torch.no_grad():
        return model(torch.from_numpy(x), torch.from_numpy(t),
                     class_labels=None if y is None else torch.from_numpy(y)).sample.numpy()


# name -> settings over ARCH. "example": the defaults of diffusers' unconditional training
# example (downsample_padding 1, attention heads of 8 channels, flip_sin_to_cos, freq_shift 0);
# "scale_shift": AdaGN res blocks and a class embedding (the middle attention then has no
# GroupNorm); "scale_shift_attn_groups": the same with attn_norm_num_groups (it has one);
# "attn_first": attention at the first level of three, 4-channel heads.
SMALL = dict(block_out_channels=(8, 16))   # a quarter of ARCH's weights: the fixtures stay small
VARIANTS = {
    "example": dict(downsample_padding=1, attention_head_dim=8, flip_sin_to_cos=True,
                    freq_shift=0),
    "scale_shift": dict(resnet_time_scale_shift="scale_shift", num_class_embeds=5,
                        attention_head_dim=8, downsample_padding=1),
    "scale_shift_attn_groups": dict(resnet_time_scale_shift="scale_shift", attn_norm_num_groups=8),
    "attn_first": dict(block_out_channels=(8, 8, 16), layers_per_block=2,
                       down_block_types=("AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D"),
                       attention_head_dim=4),
}
VARIANTS_OUT = os.path.join(HERE, "..", "tests", "fixtures", "diffusers_variants")


def write_variants(out_dir: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    t = np.array([7, 913], dtype=np.int64)
    y = np.array([1, 4], dtype=np.int64)
    for i, (name, extra) in enumerate(VARIANTS.items()):
        torch.manual_seed(i)
        gen = torch.Generator().manual_seed(100 + i)
        model = UNet2DModel(**{**ARCH, **SMALL, **extra}).eval()
        randomise(model, gen)
        labels = y if extra.get("num_class_embeds") else None
        out = run(model, x, t, labels)
        folder = os.path.join(out_dir, name)
        model.half().save_pretrained(os.path.join(folder, "unet"), safe_serialization=True)
        np.savez_compressed(os.path.join(folder, "io.npz"), x=x, t=t, out=out,
                            **({} if labels is None else {"y": labels}))
        print(f"{name}: |out| max {np.abs(out).max():.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--what", choices=("tiny", "variants"), default="tiny")
    args = ap.parse_args()
    if args.what == "variants":
        return write_variants(args.out or VARIANTS_OUT)
    args.out = args.out or DEFAULT_OUT
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    model = UNet2DModel(**ARCH).eval()
    randomise(model, gen)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    t = np.array([7, 913], dtype=np.int64)
    out = run(model, x, t)

    flip = UNet2DModel(**{**ARCH, "flip_sin_to_cos": True, "freq_shift": 0}).eval()
    flip.load_state_dict(model.state_dict())
    out_flip = run(flip, x, t)

    cond = UNet2DModel(**{**ARCH, "num_class_embeds": 5}).eval()
    missing, unexpected = cond.load_state_dict(model.state_dict(), strict=False)
    assert missing == ["class_embedding.weight"] and not unexpected, (missing, unexpected)
    with torch.no_grad():
        emb = (torch.randn(cond.class_embedding.weight.shape, generator=gen) * 0.5).half().float()
        cond.class_embedding.weight.copy_(emb)
    y = np.array([1, 4], dtype=np.int64)
    out_class = run(cond, x, t, y)

    unet_dir = os.path.join(args.out, "unet")
    model.half().save_pretrained(unet_dir, safe_serialization=True)
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4,
                  beta_end=0.02, variance_type="fixed_large", clip_sample=True
                  ).save_pretrained(os.path.join(args.out, "scheduler"))
    np.savez_compressed(os.path.join(args.out, "io.npz"), x=x, t=t, out=out, out_flip=out_flip,
                        class_embedding=emb.numpy().astype(np.float16), y=y, out_class=out_class)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"wrote {args.out} ({total / 1024:.0f} KB); |out| max {np.abs(out).max():.3f}, "
          f"flip differs by {np.abs(out - out_flip).max():.3f}, "
          f"class differs by {np.abs(out - out_class).max():.3f}")


if __name__ == "__main__":
    main()
