"""Uniform and loss-aware (Improved DDPM eq. 18) timestep samplers, and exact resume with
the loss-aware history in the training checkpoint."""
import numpy as np
import paddle
import pytest

import paddle.distributed as dist

from toy_workers import spawn_train_vlb, train_vlb

from ppddpm.config import ConfigError
from ppddpm.models.state import as_numpy
from ppddpm.train.timestep_sampler import (LossAwareSampler, UniformSampler, build_timestep_sampler)
from ppddpm.train.randomness import uniform_timesteps
GRID = (np.arange(100000) + 0.5) / 100000   # evenly spread uniforms: counts ~ N p exactly


def filled(T=5, losses=None):
    """A warmed-up sampler whose history of t holds ten copies of losses[t]."""
    s = LossAwareSampler(T)
    losses = np.arange(1.0, T + 1) if losses is None else np.asarray(losses, dtype=float)
    for _ in range(10):
        s.record(np.arange(T), losses)
    return s


def test_uniform_sampler_is_the_trainers_uniform_draw():
    u = np.random.default_rng(0).random(1000)
    t, w = UniformSampler(7).sample(u)
    ref, _ = uniform_timesteps(u, 7)
    np.testing.assert_array_equal(t.numpy(), ref.numpy())
    assert w is None and isinstance(build_timestep_sampler("uniform", 7), UniformSampler)
    with pytest.raises(ConfigError, match="loss_aware"):
        build_timestep_sampler("importance", 7)


def test_loss_aware_draws_uniformly_until_every_t_has_ten_losses():
    s = LossAwareSampler(4)
    u = np.random.default_rng(1).random(64)
    for _ in range(10):
        s.record(np.arange(3), np.ones(3))          # t = 3 never seen
    assert not s.warmed_up()
    t, w = s.sample(u)
    np.testing.assert_array_equal(t.numpy(), uniform_timesteps(u, 4)[0].numpy())
    assert w is None
    for _ in range(9):
        s.record([3], [1.0])
    assert not s.warmed_up()
    s.record([3], [1.0])
    assert s.warmed_up()


def test_probabilities_follow_eq18_with_the_uniform_mix():
    losses = np.array([4.0, 1.0, 0.25, 0.25, 0.5])
    s = filled(losses=losses)
    p = losses / losses.sum()          # sqrt(E[L^2]) = |L| for a constant history
    np.testing.assert_allclose(s.probabilities(), 0.999 * p + 0.001 / 5, rtol=1e-12)
    # sqrt of the mean square, not the mean: history {0, 2} of t=0 gives sqrt(2).
    s = filled(T=2, losses=[1.0, 1.0])
    s.record([0] * 5 + [0] * 5, [0.0] * 5 + [2.0] * 5)
    w = np.array([np.sqrt(2.0), 1.0])
    np.testing.assert_allclose(s.probabilities(), 0.999 * w / w.sum() + 0.0005, rtol=1e-12)


def test_draws_follow_the_probabilities_and_weights_make_the_loss_unbiased():
    losses = np.array([8.0, 4.0, 2.0, 1.0, 1.0])
    s = filled(losses=losses)
    p = s.probabilities()
    t, w = s.sample(GRID)
    t, w = t.numpy(), w.numpy()
    counts = np.bincount(t, minlength=5)
    assert np.all(np.abs(counts - p * len(GRID)) <= 1)
    np.testing.assert_allclose(w, 1.0 / (5 * p[t]), rtol=1e-6)
    # E_p[w_t L_t] equals the uniform mean of L_t (importance sampling, eq. 18) ...
    assert np.mean(w * losses[t]) == pytest.approx(losses.mean(), rel=1e-4)
    # ... with a smaller variance than uniform draws of t: the point of the sampler.
    var_uniform = losses.var()
    var_loss_aware = np.sum(p * (losses / (5 * p)) ** 2) - losses.mean() ** 2
    assert var_loss_aware < 0.01 * var_uniform


def test_history_keeps_the_last_ten_losses_of_each_t():
    s = LossAwareSampler(3)
    s.record([1] * 13, np.arange(13.0))
    np.testing.assert_array_equal(s.history[1], np.arange(3.0, 13.0))
    assert s.count.tolist() == [0, 10, 0]


def test_update_buffers_until_flush_and_state_round_trips(tmp_path):
    s = LossAwareSampler(3)
    s.update(paddle.to_tensor([0, 2, 2]), {"loss": paddle.to_tensor([1.0, 2.0, 3.0])})
    assert s.count.tolist() == [0, 0, 0]
    s.flush()
    assert s.count.tolist() == [1, 0, 2] and s.history[2, :2].tolist() == [2.0, 3.0]
    s = filled(losses=[3.0, 1.0, 1.0, 2.0, 5.0])
    path = str(tmp_path / "state.pdparams")
    paddle.save({"ts": s.state_dict()}, path)
    back = LossAwareSampler(5)
    back.set_state_dict(paddle.load(path)["ts"])
    np.testing.assert_array_equal(back.probabilities(), s.probabilities())
    with pytest.raises(ConfigError, match="10 timesteps"):
        LossAwareSampler(10).set_state_dict(s.state_dict())
    fresh = LossAwareSampler(5)
    fresh.set_state_dict({"name": "uniform"})   # a uniform run's checkpoint: start afresh
    assert not fresh.warmed_up()


# -- in the trainer ------------------------------------------------------------------------
def test_loss_aware_training_resumes_exactly(tmp_path):
    whole = train_vlb(str(tmp_path / "a"), 8)       # checkpoints at iterations 4 and 8
    sampler = whole.timestep_sampler
    assert sampler.warmed_up()                      # 8 steps x 10 losses filled by iteration 3
    assert sampler.probabilities().std() > 0.01     # and the draws are no longer uniform
    ckpt = str(tmp_path / "a" / "rank0" / "ckpts" / "toy_vlb_ckpt_iter_4.pdparam")
    saved = paddle.load(ckpt)["timestep_sampler"]
    assert saved["name"] == "loss_aware" and as_numpy(saved["count"]).tolist() == [10] * 8
    resumed = train_vlb(str(tmp_path / "b"), 8, resume_from=ckpt)
    np.testing.assert_array_equal(resumed.timestep_sampler.history, sampler.history)
    assert resumed.losses == whole.losses[4:]
    for k, v in whole.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[k].numpy(), v.numpy(), err_msg=k)


def test_two_ranks_and_accumulation_keep_the_single_process_history(tmp_path):
    # Losses of all ranks and micro-batches enter the history in global-batch order, so
    # the draws, and hence the updates, do not depend on how the batch is split.
    # 2 ranks x 2 accumulation steps x 8 examples, against 1 x 1 x 32 and 1 x 2 x 16
    dist.spawn(spawn_train_vlb, args=(str(tmp_path), 8, 2), nprocs=2, backend="gloo")
    train_vlb(str(tmp_path / "one"), 8)
    train_vlb(str(tmp_path / "accum"), 8, accum=2)
    one = dict(np.load(tmp_path / "one" / "weights_rank0_of1.npz"))
    assert one["count"].min() == 10
    for other in (tmp_path / "weights_rank0_of2.npz", tmp_path / "weights_rank1_of2.npz",
                  tmp_path / "accum" / "weights_rank0_of1.npz"):
        got = dict(np.load(other))
        np.testing.assert_array_equal(got["count"], one["count"])
        np.testing.assert_allclose(got["history"], one["history"], rtol=1e-5, atol=1e-6)
        for k in one:
            np.testing.assert_allclose(got[k], one[k], rtol=1e-5, atol=1e-6, err_msg=k)
