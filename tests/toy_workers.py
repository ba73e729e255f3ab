"""Functions run in each rank by paddle.distributed.spawn for the toy tests (importable)."""
import os

import numpy as np
import paddle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def vlb_config(out_dir, iters=8, accum=1):
    """configs/toy_vlb.yaml (vlb loss, loss-aware timesteps), shrunk: T = 8, width 16."""
    from ppddpm.config import apply_overrides, load_config
    cfg = load_config(os.path.join(ROOT, "configs", "toy_vlb.yaml"))
    return apply_overrides(cfg, [
        "diffusion.num_diffusion_steps=8", "diffusion.beta_end=0.3", "model.ch=16",
        "train.batchsize=32", f"train.accum_steps={accum}", f"train.training_iters={iters}",
        "train.warmup_steps=2", "train.ckpt_interval=4", f"train.ckpt_dir={out_dir}/ckpts",
        f"train.log_dir={out_dir}/log"])


def train_vlb(out_dir, iters=8, accum=1, resume_from=None):
    """Train (from a checkpoint if given); returns the trainer and saves, per rank, the
    weights, losses and the loss-aware history to weights_rank{r}_of{w}.npz."""
    from ppddpm.data import build_dataset, build_loader
    from ppddpm.diffusion import GaussianDiffusion
    from ppddpm.models import build_model
    from ppddpm.runtime.dist import init_distributed
    from ppddpm.train.trainer import Trainer

    world, rank = init_distributed()
    cfg = vlb_config(os.path.join(out_dir, f"rank{rank}"), iters, accum)
    paddle.seed(cfg.train.seed)
    model = build_model(cfg.model)
    dataset = build_dataset(cfg.data)
    trainer = Trainer(cfg, model, GaussianDiffusion.from_config(cfg.diffusion), dataset,
                      progress=False)
    if resume_from:
        trainer.load_state(paddle.load(resume_from), resume_from)
    trainer.fit(build_loader(dataset, trainer.micro_batch, seed=cfg.train.seed,
                             start_step=trainer.iteration * accum, infinite=True))
    ts = trainer.timestep_sampler
    np.savez(os.path.join(out_dir, f"weights_rank{rank}_of{world}.npz"),
             losses=np.array(trainer.losses), history=ts.history, count=ts.count,
             **{k: v.numpy() for k, v in model.state_dict().items()})
    return trainer


def spawn_train_vlb(out_dir, iters=8, accum=1):
    """train_vlb for paddle.distributed.spawn, which pickles the return value."""
    train_vlb(out_dir, iters, accum)
