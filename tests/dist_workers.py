"""Functions run in each rank by paddle.distributed.spawn (they must be importable)."""
import os
import sys

import numpy as np
import paddle

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ppddpm.config import Config  # noqa: E402


def tiny_config(out_dir, batchsize=4, accum=1, iters=2, p_uncond=None):
    """The tiny UNet; with ``p_uncond``, a conditional MLP on 3 classes (its labels reach
    the loss from the 2nd iteration, where the UNet's zero-initialised convs need a 3rd)."""
    cfg = Config()
    m = cfg.model
    m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.dropout, m.resolution = 32, [1, 2], 1, [8], 0.0, 16
    cfg.diffusion.num_diffusion_steps, cfg.diffusion.beta_end = 50, 0.1
    t = cfg.train
    t.batchsize, t.accum_steps, t.training_iters, t.warmup_steps = batchsize, accum, iters, 1
    t.sample_interval, t.ckpt_interval, t.ema_decay, t.lr = 0, 1, 0.5, 2e-4  # the paper's lr
    t.ckpt_dir, t.log_dir = os.path.join(out_dir, "ckpts"), os.path.join(out_dir, "log")
    if p_uncond is not None:
        m.arch, m.num_classes, t.p_uncond = "mlp", 3, p_uncond
    return cfg


class FixedImages(paddle.io.Dataset):
    """8 fixed 16x16 images in [-1, 1] with labels i mod 3; keys are ints or (index, flip) pairs."""
    class_names = ["a", "b", "c"]

    def __init__(self):
        self.data = np.random.default_rng(0).uniform(-1, 1, (8, 3, 16, 16)).astype("float32")

    def __len__(self):
        return len(self.data)

    def __getitem__(self, key):
        i, flip = key if isinstance(key, (tuple, list)) else (key, False)
        img = self.data[int(i)]
        return (img[:, :, ::-1].copy() if flip else img), np.int64(int(i) % 3)


def train_tiny(out_dir, batchsize=4, accum=1, iters=2, resume_from=None, amp="off",
               p_uncond=None):
    """Train the tiny UNet (from a checkpoint if given); each rank writes into its own
    folder and saves its weights. ``p_uncond``: a class-conditional net (see tiny_config)."""
    from ppddpm.data import build_loader
    from ppddpm.diffusion import GaussianDiffusion
    from ppddpm.models import build_model
    from ppddpm.runtime.dist import init_distributed
    from ppddpm.train.trainer import Trainer

    world, rank = init_distributed()
    rank_dir = os.path.join(out_dir, f"rank{rank}")
    cfg = tiny_config(rank_dir, batchsize, accum, iters, p_uncond)
    cfg.train.amp = amp
    paddle.seed(0)
    model = build_model(cfg.model)
    trainer = Trainer(cfg, model, GaussianDiffusion.from_config(cfg.diffusion), FixedImages(),
                      progress=False)
    if resume_from:
        trainer.load_state(paddle.load(resume_from), resume_from)
    loader = build_loader(trainer.dataset, trainer.micro_batch, seed=0, infinite=True,
                          start_step=trainer.iteration * accum)
    trainer.fit(loader)
    np.savez(os.path.join(out_dir, f"weights_rank{rank}_of{world}.npz"),
             losses=np.array(trainer.losses),
             **{k: v.numpy() for k, v in model.state_dict().items()},
             **{"ema::" + k: v.numpy() for k, v in trainer.ema.state_dict().items()})


def denoise(argv):
    from ppddpm.cli import main
    code = main(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "configs", "cifar10.yaml"), "test", argv=argv)
    assert code == 0


def denoise_with_classifier(argv):
    """``denoise`` with brightness.pdparam read as the known classifier of
    helpers_classifier (16x16 images)."""
    from helpers_classifier import reading_classifier
    from ppddpm import pipeline
    pipeline.load_pretrained = reading_classifier(pipeline.load_pretrained, resolution=16)
    denoise(argv)
