"""The trainer's faster update paths change no value: the merged Adam kernel (with the
per-parameter ops on a step where a parameter has no gradient), the EMA held as one flat
tensor, and the NaN check on the flat copy of the weights, which still runs after every
update, before the EMA reads it, so a single NaN element is never saved."""
import os

import numpy as np
import paddle
import pytest

from dist_workers import FixedImages, tiny_config
from ppddpm.data import build_loader
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.errors import TrainingDiverged
from ppddpm.models import build_model
from ppddpm.train.ema import EMA
from ppddpm.train.optim import Adam
from ppddpm.train.trainer import Trainer


def run_adam(cls, skip_first_layer_at):
    paddle.seed(0)
    net = paddle.nn.Sequential(paddle.nn.Linear(4, 8), paddle.nn.Linear(8, 2))
    opt = cls(learning_rate=1e-2, parameters=net.parameters(),
              grad_clip=paddle.nn.ClipGradByGlobalNorm(0.1))
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((16, 4)).astype("float32"))
    for step in range(5):
        hidden = net[0](x)
        out = net[1](hidden.detach() if step in skip_first_layer_at else hidden)
        (out ** 2).mean().backward()
        opt.step()
        opt.clear_grad(set_to_zero=False)
    return [p.numpy() for p in net.parameters()], opt.state_dict()


@pytest.mark.parametrize("skip", [(), (0,), (2, 3)])
def test_merged_adam_matches_paddles_adam_also_when_a_layer_has_no_gradient(skip):
    want, want_state = run_adam(paddle.optimizer.Adam, skip)
    got, got_state = run_adam(Adam, skip)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    assert len(got_state) == len(want_state)
    for (ka, va), (kb, vb) in zip(sorted(want_state.items()), sorted(got_state.items())):
        if hasattr(va, "numpy"):
            np.testing.assert_allclose(vb.numpy(), va.numpy(), rtol=1e-5, atol=1e-7, err_msg=ka)


@pytest.mark.parametrize("flat", [True, False])
def test_ema_is_the_per_tensor_rule_through_reads_and_loads(flat):
    paddle.seed(1)
    live = paddle.nn.Sequential(paddle.nn.Linear(3, 5), paddle.nn.Linear(5, 2))
    ema = EMA(live, 0.9, flat=flat)
    shadow = [p.numpy().astype(np.float32) for p in live.parameters()]
    rng = np.random.default_rng(0)
    for step in range(6):
        for p in live.parameters():
            p.set_value(p + paddle.to_tensor(rng.standard_normal(p.shape).astype("float32")))
        ema.update()
        shadow = [np.float32(0.9) * s + live_p.numpy() * np.float32(1.0 - 0.9)
                  for s, live_p in zip(shadow, live.parameters())]
        if step == 2:    # a read in between (a sample grid, a checkpoint)
            for p, s in zip(ema.model.parameters(), shadow):
                np.testing.assert_allclose(p.numpy(), s, rtol=1e-6)
        if step == 3:    # weights loaded into the EMA network (resume) are what it goes on from
            state = {k: paddle.to_tensor(v.numpy() * 0 + 0.5) for k, v in ema.state_dict().items()}
            ema.set_state_dict(state)
            shadow = [np.full(s.shape, 0.5, np.float32) for s in shadow]
    for (name, p), s in zip(ema.state_dict().items(), shadow):
        np.testing.assert_allclose(p.numpy(), s, rtol=1e-6, err_msg=name)


def test_one_nan_element_after_an_update_is_caught_and_never_saved(tmp_path):
    cfg = tiny_config(str(tmp_path), iters=4)
    cfg.train.ckpt_interval = 1
    paddle.seed(0)
    trainer = Trainer(cfg, build_model(cfg.model), GaussianDiffusion.from_config(cfg.diffusion),
                      FixedImages(), progress=False)
    real_step = trainer.optim.step

    def step_then_poison():
        real_step()
        if trainer.iteration == 2:          # the third update leaves one weight element NaN
            p = trainer.model.parameters()[-1]
            values = p.numpy().copy()
            values.flat[-1] = np.nan
            p.set_value(values)
    trainer.optim.step = step_then_poison
    with pytest.raises(TrainingDiverged, match="update of iteration 2 made weights NaN"):
        trainer.fit(build_loader(trainer.dataset, trainer.micro_batch, seed=0, infinite=True))
    saved = sorted(os.listdir(tmp_path / "ckpts"))
    assert saved == ["cifar10_ckpt_iter_1.pdparam", "cifar10_ckpt_iter_2.pdparam"]
    # the EMA never took the NaN in: the check runs before the EMA reads the weights
    assert all(np.isfinite(v.numpy()).all() for v in trainer.ema.state_dict().values())
