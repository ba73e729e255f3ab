"""Build tests/fixtures/ddim_tiny: small networks of DDIM's code (ermongroup/ddim,
models/diffusion.py: Ho's DDPM UNet in PyTorch) with random weights, saved the two ways
DDIM's code reads checkpoints, with their outputs; and the key/shape lists of the
published configurations.

Needs torch and a copy of ermongroup/ddim (never needed by ppddpm or its tests):
    /work/venv-ref/bin/python tools/make_ddim_fixture.py --ddim_git /work/.mirror/ermongroup+ddim/repo

Files (kept small: one tiny network, float16 storages, which the reader widens):
  ddim_ckpt.pth  DDIM's training checkpoint, [model, optimizer, epoch, step, ema] with
                 DataParallel's "module." names, in the legacy (torch < 1.6) layout of
                 2020; the raw and EMA weights differ. (The flat state dicts of Ho's
                 converted files, model-790000.ckpt etc., the tests write themselves from
                 the EMA weights, in the zip layout: tests/helpers_inception.write_pth.)
  io.npz         x, t and the outputs of the EMA weights (ema_out) and of the raw ones
                 (raw_out).
  shapes.json    {config name: {key: shape}} of DDIM's cifar10, celeba and church configs
                 (full size, no weights), for the recognition of the published networks.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from types import SimpleNamespace as NS

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures", "ddim_tiny")
TINY = dict(ch=32, ch_mult=[1, 1], num_res_blocks=1, attn_resolutions=[16], dropout=0.0,
            resolution=32)


def upstream_model_class(ddim_git: str):
    src = subprocess.run(["git", "--git-dir", ddim_git, "show", "HEAD:models/diffusion.py"],
                         check=True, capture_output=True, text=True).stdout
    path = os.path.join(tempfile.mkdtemp(), "ddim_diffusion.py")
    with open(path, "w") as fh:
        fh.write(src)
    spec = importlib.util.spec_from_file_location("ddim_diffusion", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Model


def config(ch, ch_mult, num_res_blocks, attn_resolutions, dropout, resolution):
    return NS(model=NS(type="simple", in_channels=3, out_ch=3, ch=ch, ch_mult=ch_mult,
                       num_res_blocks=num_res_blocks, attn_resolutions=attn_resolutions,
                       dropout=dropout, resamp_with_conv=True),
              data=NS(image_size=resolution), diffusion=NS(num_diffusion_timesteps=1000))


def randomise(model, gen, half=False):
    """Non-zero weights everywhere (DDPM zero-initialises conv2/proj_out/conv_out)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name and name.endswith("weight"):
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
            elif p.ndim == 1:
                v = 0.1 * torch.randn(p.shape, generator=gen)
            else:
                v = torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5
            p.copy_(v.half().float() if half else v)


def run(model, x, t):
    with torch.no_grad():
        return model(torch.from_numpy(x), torch.from_numpy(t)).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ddim_git", default="/work/.mirror/ermongroup+ddim/repo")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    Model = upstream_model_class(args.ddim_git)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    cfg = config(**TINY)

    raw, ema = Model(cfg).eval(), Model(cfg).eval()
    randomise(raw, gen, half=True)
    randomise(ema, gen, half=True)
    wrapped = torch.nn.DataParallel(raw)
    opt = torch.optim.SGD(wrapped.parameters(), lr=1e-4)
    half = lambda sd: {k: v.half() for k, v in sd.items()}
    ema_state = {"module." + k: v.half() for k, v in ema.state_dict().items()}
    torch.save([half(wrapped.state_dict()), opt.state_dict(), 7, 1234, ema_state],
               os.path.join(args.out, "ddim_ckpt.pth"), _use_new_zipfile_serialization=False)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    t = np.array([3, 777], dtype=np.int64)
    np.savez(os.path.join(args.out, "io.npz"), x=x, t=t, ema_out=run(ema, x, t),
             raw_out=run(raw, x, t))

    shapes = {}
    for name in ("cifar10", "celeba", "church"):
        yml = subprocess.run(["git", "--git-dir", args.ddim_git, "show", f"HEAD:configs/{name}.yml"],
                             check=True, capture_output=True, text=True).stdout
        import yaml   # the configs are YAML; PyYAML comes with the reference environment
        m, d = yaml.safe_load(yml)["model"], yaml.safe_load(yml)["data"]
        with torch.device("meta"):
            net = Model(config(m["ch"], m["ch_mult"], m["num_res_blocks"], m["attn_resolutions"],
                               m["dropout"], d["image_size"]))
        shapes[name] = {k: list(v.shape) for k, v in net.state_dict().items()}
    with open(os.path.join(args.out, "shapes.json"), "w") as fh:
        json.dump(shapes, fh)
    print("wrote", sorted(os.listdir(args.out)), file=sys.stderr)


if __name__ == "__main__":
    main()
