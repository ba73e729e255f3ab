"""Trainer behaviour: mixed precision on the CPU, NaN losses, interrupts, EMA, timesteps."""
import os

import numpy as np
import paddle
import pytest

from dist_workers import FixedImages, tiny_config, train_tiny

from ppddpm.data import build_loader
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.errors import PPDDPMError, TrainingDiverged
from ppddpm.models import build_model
from ppddpm.train.ema import EMA
from ppddpm.train.randomness import (drop_labels, example_draws, label_dropout_uniform,
                                     uniform_timesteps)
from ppddpm.train.trainer import Trainer


def make_trainer(out_dir, **train):
    cfg = tiny_config(str(out_dir))
    for k, v in train.items():
        setattr(cfg.train, k, v)
    paddle.seed(0)
    model = build_model(cfg.model)
    trainer = Trainer(cfg, model, GaussianDiffusion.from_config(cfg.diffusion), FixedImages(),
                      progress=False)
    return trainer, build_loader(trainer.dataset, trainer.micro_batch, seed=0, infinite=True)


@pytest.mark.parametrize("amp", ["float16", "bfloat16"])
def test_amp_on_cpu_says_it_trains_in_float32_and_matches(tmp_path, amp):
    with pytest.warns(UserWarning, match="trains in float32"):
        train_tiny(str(tmp_path / amp), amp=amp)
    train_tiny(str(tmp_path / "off"))
    a = np.load(tmp_path / amp / "weights_rank0_of1.npz")
    b = np.load(tmp_path / "off" / "weights_rank0_of1.npz")
    for k in b.files:  # loss scaling by a power of two is exact in float32
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-7, err_msg=k)


def test_nan_loss_stops_before_the_update_and_names_the_checkpoint(tmp_path):
    trainer, loader = make_trainer(tmp_path, training_iters=3)
    trainer.dataset.data[:] = np.nan
    before = {k: v.numpy().copy() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="iteration 0.*no checkpoint was written yet"):
        trainer.fit(loader)
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    assert not os.path.exists(tmp_path / "ckpts")


def test_interrupt_saves_a_checkpoint(tmp_path, monkeypatch):
    trainer, loader = make_trainer(tmp_path, training_iters=5, ckpt_interval=100)
    calls = {"n": 0}
    real_step = trainer.train_step

    def step_then_interrupt(*batches):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_step(*batches)
    monkeypatch.setattr(trainer, "train_step", step_then_interrupt)
    with pytest.raises(PPDDPMError, match="interrupted at iteration 2.*--mode resume"):
        trainer.fit(loader)
    ckpt = paddle.load(str(tmp_path / "ckpts" / "cifar10_ckpt_iter_2.pdparam"))
    assert ckpt["ckpt_idx"] == 1


def test_ema_update_rule():
    lin = paddle.nn.Linear(2, 2)
    ema = EMA(lin, 0.9)
    start = lin.weight.numpy().copy()
    lin.weight.set_value(lin.weight + 1.0)
    ema.update()
    np.testing.assert_allclose(ema.model.weight.numpy(), start + 0.1, rtol=1e-6)
    assert all(p.stop_gradient for p in ema.model.parameters())


def test_example_draws_depend_only_on_seed_iteration_and_index():
    u1, n1 = example_draws(0, 5, [0, 1, 2, 3], (2, 2))
    u2, n2 = example_draws(0, 5, [2, 3], (2, 2))
    np.testing.assert_array_equal(u1[2:], u2)
    np.testing.assert_array_equal(n1[2:], n2)
    u3, _ = example_draws(0, 6, [0, 1, 2, 3], (2, 2))
    assert not np.array_equal(u1, u3)
    t, w = uniform_timesteps(np.array([0.0, 0.4999, 0.5, 0.999999]), 10)
    assert t.numpy().tolist() == [0, 4, 5, 9] and w is None
    # uniform over all timesteps
    u, _ = example_draws(1, 0, range(20000), (1,))
    counts = np.bincount(uniform_timesteps(u, 4)[0].numpy(), minlength=4)
    assert np.all(np.abs(counts - 5000) < 5 * np.sqrt(20000 * 0.25 * 0.75))


def test_label_dropout_rate_is_p_uncond_from_each_examples_own_stream():
    n = 200_000
    u = label_dropout_uniform(3, 7, range(n))
    for p in (0.1, 0.2):
        rate = float((drop_labels(np.ones(n, np.int64), u, p, 10) == 10).mean())
        assert abs(rate - p) < 5 * np.sqrt(p * (1 - p) / n)
    # one rank's share of the global batch draws what the whole batch draws at its indices
    np.testing.assert_array_equal(label_dropout_uniform(3, 7, range(1000, 2000)), u[1000:2000])
    # independent of the timestep uniform of the same example, and new every iteration
    t_u, _ = example_draws(3, 7, range(n), (1,))
    assert abs(np.corrcoef(u, t_u)[0, 1]) < 5 / np.sqrt(n)
    assert abs(np.corrcoef(u, label_dropout_uniform(3, 8, range(n)))[0, 1]) < 5 / np.sqrt(n)


def test_trainer_feeds_the_labels_with_the_null_id_at_p_uncond(tmp_path):
    cfg = tiny_config(str(tmp_path))
    cfg.model.num_classes, cfg.train.p_uncond, cfg.train.batchsize = 3, 0.3, 8
    paddle.seed(0)
    trainer = Trainer(cfg, build_model(cfg.model), GaussianDiffusion.from_config(cfg.diffusion),
                      FixedImages(), progress=False)
    labels = np.arange(8) % 3
    fed = []
    for it in range(500):
        trainer.iteration = it
        fed.append(trainer.model_labels(0, paddle.to_tensor(labels))["y"].numpy())
    fed = np.stack(fed)
    dropped = fed == 3
    assert abs(dropped.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / fed.size)
    np.testing.assert_array_equal(fed[~dropped], np.broadcast_to(labels, fed.shape)[~dropped])
    assert trainer.model_labels(0, None) == {}
