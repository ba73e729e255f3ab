"""Shared helpers for the legacy-network, pretrained-loading and conversion tests."""
import os
import re

import numpy as np
import paddle

from ppddpm.config import ModelConfig
from ppddpm.models.legacy import LegacyFPN, LegacyUNet

from legacy_weights import fill_weights  # noqa: F401  (shared with tools/make_legacy_fixture.py)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
T_TINY = 10

# The tiny nets of tools/make_legacy_fixture.py (original: attn_levels=[1] at 8x8 input).
TINY_UNET = dict(arch="legacy_unet", ch=32, ch_mult=[1, 2], num_res_blocks=1,
                 attn_resolutions=[16], dropout=0.1, resolution=32, num_steps=T_TINY)
TINY_FPN = dict(arch="legacy_fpn", ch=32, ch_mult=[1, 2, 2], num_res_blocks=2,
                attn_resolutions=[], dropout=0.0, resolution=128, num_steps=T_TINY)


def tiny(kind):
    return (LegacyUNet(ModelConfig(**TINY_UNET)) if kind == "unet"
            else LegacyFPN(ModelConfig(**TINY_FPN)))


def random_state(model, seed):
    """A state dict of random float32 numpy arrays for ``model``."""
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(v.shape) * 0.1).astype(np.float32)
            for k, v in model.state_dict().items()}


def parse_key_file(path=os.path.join(FIXTURES, "original_state_dict_keys.txt")):
    """{'unet': [(name, [shape])...], 'fpn': [...]} in file order."""
    sections, current = {}, None
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line.startswith("# UNet"):
                current = sections.setdefault("unet", [])
            elif line.startswith("# FPN"):
                current = sections.setdefault("fpn", [])
            elif line and not line.startswith("#"):
                name, shape = line.split(" ", 1)
                current.append((name, [int(s) for s in re.findall(r"\d+", shape)]))
    return sections


def original_options(kind):
    """The original scripts' options dict (a subset is enough for the loaders)."""
    opts = {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
            "num_diffusion_steps": T_TINY, "loss_type": "noisepred", "batchsize": 128,
            "training_iters": 800000, "ema_decay": 0.995, "lr": 2e-4, "warmup_steps": 5000,
            "mode": "train", "sequence": False, "sample_postfix": "ddpm_cifar10_test"}
    if kind == "fpn":
        opts.update(batchsize=24, data_dir="./datasets/celeba_hq", convert_ema=True)
    return opts


def tiny_betas():
    return np.linspace(1e-4, 0.02, T_TINY, dtype=np.float64)


def write_original_file(path, kind, training, seed=0):
    """Write a file in the original reproduction's dict layout; return (model, ema) states.

    Like the original, the state dicts hold paddle tensors (``Layer.state_dict()``).
    """
    net = tiny(kind)
    model_state = random_state(net, seed)
    ema_state = random_state(net, seed + 1)
    net.set_state_dict(ema_state if training else model_state)
    obj = {"model": net.state_dict() if not training else _tensors(model_state),
           "options": original_options(kind), "betas": tiny_betas()}
    if training:
        obj.update(model_ema=net.state_dict(), lr_sched={"last_epoch": 7}, optim={},
                   ckpt_idx=6)
    paddle.save(obj, str(path))
    return model_state, ema_state


def _tensors(state):
    return {k: paddle.to_tensor(v) for k, v in state.items()}


def forward_np(model, x, t):
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(x), paddle.to_tensor(t)).numpy()


def probe_input(seed=3, res=8):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((2, 3, res, res)).astype(np.float32),
            np.array([1, T_TINY - 1], dtype=np.int64))
