"""Build tests/fixtures/diffusers_tiny: a small diffusers UNet2DModel with the DDPM
architecture (config semantics of google/ddpm-cifar10-32), random weights, and its outputs.

Needs torch + diffusers (optional, never needed by ppddpm or its tests), e.g.
    python3 -m venv /work/venv-ref && /work/venv-ref/bin/pip install torch diffusers numpy safetensors
    /work/venv-ref/bin/python tools/make_diffusers_fixture.py

Files: unet/config.json, unet/diffusion_pytorch_model.safetensors (F16 weights),
scheduler/scheduler_config.json, io.npz with x, t, out (this model), out_flip (same
weights, config flip_sin_to_cos=true, freq_shift=0), class_embedding, y, out_class
(same weights plus a class embedding, num_class_embeds=5).
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
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
