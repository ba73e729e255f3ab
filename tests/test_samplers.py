"""The sampler contract, DDIM/DDPM equivalences, seeding and respacing."""
import numpy as np
import paddle
import pytest

from ppddpm import (DDIMSampler, DDPMSampler, GaussianDiffusion, get_beta_schedule, respace,
                    space_timesteps)
from ppddpm.samplers import ddim_timesteps
from ppddpm.samplers.noise import NoiseStream

BETAS = get_beta_schedule("linear", 1000)


def toy_model(x, t):
    # A nonlinear stand-in for a network: depends on x and on the timestep.
    return paddle.tanh(x * 0.7) * (1.0 + t.astype("float32").reshape([-1, 1, 1, 1]) / 1000.0)


def test_ddim_eta0_is_deterministic_given_x_T():
    d = GaussianDiffusion(BETAS)
    x_T = paddle.randn([4, 3, 4, 4])
    a = DDIMSampler(d, stride=50).sample(toy_model, x_T.shape, seed=1, noise=x_T, progress=False)
    b = DDIMSampler(d, stride=50).sample(toy_model, x_T.shape, seed=2, noise=x_T, progress=False)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    c = DDIMSampler(d, stride=50, eta=1.0).sample(toy_model, x_T.shape, seed=2, noise=x_T, progress=False)
    assert not np.allclose(a.numpy(), c.numpy())


def test_ddim_eta1_full_sequence_equals_ddpm_fixed_small():
    d = GaussianDiffusion(get_beta_schedule("linear", 100, 1e-3, 0.2), "eps", "fixed_small")
    shape = [3, 2, 4, 4]
    # With clipping, DDPM's posterior mean is built from the clipped x0, so DDIM equals it
    # when its eps is re-derived from that x0 (clipped_eps); without clipping, by default.
    for clip, kw in ((True, dict(clipped_eps=True)), (False, {})):
        ddim = DDIMSampler(d, stride=1, eta=1.0, clip_denoised=clip, **kw)
        ddpm = DDPMSampler(d, clip_denoised=clip)
        assert ddim.steps == ddpm.steps
        a = ddim.sample(toy_model, shape, seed=7, progress=False)
        b = ddpm.sample(toy_model, shape, seed=7, progress=False)
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5, rtol=1e-4)  # unclipped: |x| ~ 100


def test_samples_depend_only_on_seed_and_image_index():
    d = GaussianDiffusion(get_beta_schedule("linear", 50, 1e-3, 0.2))
    sampler = DDPMSampler(d)
    whole = sampler.sample(toy_model, [6, 1, 4, 4], seed=3, progress=False).numpy()
    first = sampler.sample(toy_model, [2, 1, 4, 4], seed=3, progress=False).numpy()
    rest = sampler.sample(toy_model, [4, 1, 4, 4], seed=3, index_offset=2, progress=False).numpy()
    np.testing.assert_allclose(np.concatenate([first, rest]), whole, atol=1e-6)
    other = sampler.sample(toy_model, [2, 1, 4, 4], seed=4, progress=False).numpy()
    assert not np.allclose(other, first)


def test_noise_stream_chunking_does_not_change_draws(monkeypatch):
    import ppddpm.samplers.noise as noise_mod
    big = NoiseStream(5, [0, 1], (3, 2))
    draws_big = [big.next().numpy() for _ in range(7)]
    monkeypatch.setattr(noise_mod, "CHUNK_BYTES", 1)  # one step per refill
    small = NoiseStream(5, [0, 1], (3, 2))
    assert small.chunk == 1
    np.testing.assert_array_equal(np.stack(draws_big), np.stack([small.next().numpy() for _ in range(7)]))


def test_progressive_yields_every_k_and_the_end():
    d = GaussianDiffusion(get_beta_schedule("linear", 100, 1e-3, 0.2))
    frames = list(DDPMSampler(d).progressive(toy_model, [2, 1, 4, 4], every=30, seed=0))
    assert [f["t"] for f in frames] == [69, 39, 9, -1]
    final = DDPMSampler(d).sample(toy_model, [2, 1, 4, 4], seed=0, progress=False)
    np.testing.assert_array_equal(frames[-1]["x"].numpy(), final.numpy())
    assert frames[-1]["pred_x0"].shape == [2, 1, 4, 4]
    frames = list(DDIMSampler(d, stride=10).progressive(toy_model, [2, 1, 4, 4], every=5, seed=0))
    assert [f["t"] for f in frames] == [40, -1]


def test_clipping_keeps_samples_in_range():
    d = GaussianDiffusion(BETAS, "x0", "fixed_small")
    x = DDIMSampler(d, num_steps=10).sample(lambda x, t: x * 10, [2, 1, 4, 4], progress=False)
    assert float(x.abs().max()) <= 1.0 + 1e-6


def test_legacy_range_models_are_mapped_to_unit_range():
    class ZeroOneModel:
        data_range = (0.0, 1.0)

        def __call__(self, x, t):
            return paddle.full_like(x, 1.0)  # predicts x0 = 1 everywhere (top of its range)
    d = GaussianDiffusion(BETAS, "x0", "fixed_small")
    x = DDIMSampler(d, num_steps=5).sample(ZeroOneModel(), [1, 1, 2, 2], progress=False)
    np.testing.assert_allclose(x.numpy(), 1.0, atol=1e-5)


def test_ddim_timesteps():
    assert ddim_timesteps(1000, stride=10) == list(range(0, 1000, 10))
    assert ddim_timesteps(1000, num_steps=50) == list(range(0, 1000, 20))
    quad = ddim_timesteps(1000, num_steps=20, skip="quadratic")
    assert quad[0] == 0 and quad[-1] == int(800) and len(quad) <= 20
    assert quad == sorted(set(quad))
    assert (np.diff(quad)[1:] >= np.diff(quad)[:-1]).all()  # gaps grow quadratically
    with pytest.raises(ValueError, match="stride"):
        ddim_timesteps(100, stride=0)
    with pytest.raises(ValueError, match="skip"):
        ddim_timesteps(100, num_steps=10, skip="cubic")


def test_space_timesteps():
    assert space_timesteps(1000, "ddim50") == list(range(0, 1000, 20))
    assert space_timesteps(1000, "ddim1000") == list(range(1000))
    steps = space_timesteps(300, "10,15,20")
    assert len(steps) == 45
    assert steps[:10] == [round(i * 99 / 9) for i in range(10)]
    assert steps[10] == 100 and steps[24] == 199 and steps[25] == 200 and steps[-1] == 299
    assert space_timesteps(1000, [999, 0, 500]) == [0, 500, 999]
    with pytest.raises(ValueError, match="section"):
        space_timesteps(10, "20")
    with pytest.raises(ValueError):
        space_timesteps(10, [10])


def test_respaced_diffusion_keeps_alpha_bar_and_original_indices():
    d = GaussianDiffusion(BETAS, "eps", "fixed_large")
    spaced = respace(d, "ddim10")
    keep = list(range(0, 1000, 100))
    np.testing.assert_array_equal(spaced.timestep_map, keep)
    np.testing.assert_allclose(spaced.alphas_cumprod, d.alphas_cumprod[keep], rtol=1e-12)
    seen = []

    def recording_model(x, t):
        seen.append(t.numpy().tolist())
        return x * 0
    DDPMSampler(spaced).sample(recording_model, [2, 1, 2, 2], progress=False)
    assert [s[0] for s in seen] == keep[::-1]
    # Respacing a respaced diffusion composes the maps.
    twice = respace(spaced, [0, 5, 9])
    np.testing.assert_array_equal(twice.timestep_map, [0, 500, 900])


def test_a_suspended_progressive_run_leaves_gradients_on():
    """Only each step runs without gradients: a generator paused between yields (or dropped
    half-way) must not switch autograd off for the rest of the process."""
    import paddle
    from ppddpm import DDIMSampler, GaussianDiffusion, get_beta_schedule
    sampler = DDIMSampler(GaussianDiffusion(get_beta_schedule("linear", 100, 1e-4, 0.02)), num_steps=10)
    run = sampler.progressive(lambda x, t: paddle.zeros_like(x) + 0.1, [2, 1, 4, 4], every=1)
    frame = next(run)
    assert frame["x"].stop_gradient            # the step itself built no graph
    assert paddle.is_grad_enabled()            # paused between steps: autograd is on
    del run                                    # dropped half-way
    w = paddle.ones([3])
    w.stop_gradient = False
    (w * w).sum().backward()
    assert w.grad is not None and float(w.grad.sum()) == 6.0


@pytest.mark.parametrize("make, steps_with_noise", [
    (lambda d: DDIMSampler(d, num_steps=5, eta=0.0), 0),     # x_T only
    (lambda d: DDIMSampler(d, num_steps=5, eta=0.5), 4),     # the last step has sigma = 0
    (lambda d: DDPMSampler(d), 19),                          # no noise at t = 0
])
def test_noise_is_drawn_only_while_a_step_reads_it(monkeypatch, make, steps_with_noise):
    """Samples equal the old rule (draw i + 1 handed to step i, every step) bit for bit, and
    nothing is drawn after the last step that reads noise."""
    import ppddpm.samplers.base as base_mod
    d = GaussianDiffusion(get_beta_schedule("linear", 20, 1e-3, 0.2))
    sampler, shape = make(d), [3, 2, 4, 4]
    draws = []

    class Counting(NoiseStream):
        def next(self):
            draws.append(1)
            return super().next()
    monkeypatch.setattr(base_mod, "NoiseStream", Counting)
    got = sampler.sample(toy_model, shape, seed=11, progress=False).numpy()
    assert len(draws) == 1 + steps_with_noise
    stream = NoiseStream(11, range(3), shape[1:])
    x = stream.next()
    with paddle.no_grad():
        for t, t_prev in sampler.steps:
            x, _ = sampler.step(toy_model, x, t, t_prev, stream.next())
    np.testing.assert_array_equal(got, x.numpy())


@pytest.mark.parametrize("mean_type", ["eps", "x0", "xprev"])
def test_predictions_without_the_posterior_are_the_same(mean_type):
    d = GaussianDiffusion(get_beta_schedule("linear", 20, 1e-3, 0.2), mean_type, "learned_range")
    x = paddle.randn([2, 3, 4, 4])
    t = paddle.to_tensor([3, 17])

    def net(x, t):   # mean and variance channels
        return paddle.concat([toy_model(x, t), 0.1 * x], axis=1)
    full = d.p_mean_variance(net, x, t, clip_denoised=True)
    lean = d.p_mean_variance(net, x, t, clip_denoised=True, posterior=False)
    assert sorted(lean) == ["model_output", "pred_x0"]
    for key in lean:
        np.testing.assert_array_equal(lean[key].numpy(), full[key].numpy())
