"""The adm networks and their diffusion against improved-diffusion's and guided-diffusion's
own PyTorch code, through tests/fixtures/adm_parity.npz (tools/make_adm_fixture.py): every
weight random, outputs to ~1e-5 relative."""
import numpy as np
import paddle
import pytest

from helpers_adm import build_with_upstream_weights, case_config, load_fixture
from ppddpm.config import Config, set_value, validate
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.diffusion.respace import respace, space_timesteps
from ppddpm.diffusion.schedules import get_beta_schedule
from ppddpm.models import build_model, count_parameters

DATA, META = load_fixture()
RTOL = 1e-5


def close(got, want, rtol=RTOL):
    """|got - want| <= rtol * max|want| (relative to the array's scale)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)
    assert err <= rtol, f"relative error {err:.2e} > {rtol:.0e}"


def _inputs(name):
    kw = {} if f"{name}/y" not in DATA else {"y": paddle.to_tensor(DATA[f"{name}/y"])}
    return paddle.to_tensor(DATA[f"{name}/x"]), kw


@pytest.mark.parametrize("name", sorted(META["cases"]))
def test_network_output_matches_upstream(name):
    case = META["cases"][name]
    x, kw = _inputs(name)
    cfg = case_config(case["kwargs"], x.shape[-1], case["diffusion"], rescale=False)
    model = build_with_upstream_weights(cfg, case["shapes"])
    with paddle.no_grad():
        out = model(x, paddle.to_tensor(DATA[f"{name}/t"]), **kw).numpy()
    close(out, DATA[f"{name}/out"])


def test_the_fixture_covers_what_the_issue_asks():
    cases = META["cases"]
    kw = {n: c["kwargs"] for n, c in cases.items()}
    assert any(k.get("num_heads", 1) > 1 and not k.get("use_new_attention_order") and
               k.get("num_head_channels", -1) == -1 for k in kw.values())     # legacy, >1 head
    assert any(k.get("use_new_attention_order") for k in kw.values())
    assert any(k.get("resblock_updown") for k in kw.values())
    assert {6, 7} <= {len(k["channel_mult"]) for k in kw.values()}
    assert any(0.5 in k["channel_mult"] for k in kw.values())
    assert {"attention", "adaptive", "spatial", "spatial_v2"} == {
        c["kwargs"]["pool"] for c in META["classifiers"].values()}


@pytest.mark.parametrize("name", sorted(n for n, c in META["cases"].items() if c["diffusion"]))
def test_p_mean_variance_matches_upstream(name):
    """mean, log-variance and pred_x0 of the respaced chain (upstream's SpacedDiffusion),
    with rescaled timesteps where the case's flags ask for them."""
    case = META["cases"][name]
    x, kw = _inputs(name)
    cfg = case_config(case["kwargs"], x.shape[-1], case["diffusion"], rescale=True)
    model = build_with_upstream_weights(cfg, case["shapes"])
    diffusion = GaussianDiffusion.from_config(cfg.diffusion)
    np.testing.assert_allclose(diffusion.betas, DATA[f"{name}/betas"], rtol=1e-10, atol=0)   # float64 rounding
    spec = case["diffusion"]["timestep_respacing"]
    if spec:
        diffusion = respace(diffusion, spec)
    t = paddle.to_tensor(DATA[f"{name}/pmv_t"])
    with paddle.no_grad():
        out = diffusion.p_mean_variance(model, x, t, clip_denoised=True, model_kwargs=kw)
    close(out["mean"].numpy(), DATA[f"{name}/pmv_mean"])
    close(out["log_variance"].numpy(), DATA[f"{name}/pmv_log_variance"])
    # x0 = sqrt(1/abar) x - sqrt(1/abar - 1) eps (eq. 4 inverted): eps agrees to RTOL of its
    # own scale, which reaches x0 (clipped to [-1, 1]) multiplied by sqrt(1/abar - 1).
    gain = float(diffusion.sqrt_recipm1_alphas_cumprod[DATA[f"{name}/pmv_t"]].max())
    eps_scale = float(np.abs(out["model_output"].numpy()).max())
    close(out["pred_x0"].numpy(), DATA[f"{name}/pmv_pred_xstart"],
          rtol=RTOL * max(1.0, gain * eps_scale))


@pytest.mark.parametrize("name", sorted(n for n, c in META["cases"].items() if c["diffusion"]))
def test_training_losses_match_upstream(name):
    """The hybrid loss (rescaled as improved-diffusion does) and the unrescaled one."""
    case = META["cases"][name]
    _, kw = _inputs(name)
    x0 = DATA[f"{name}/loss_x0"]
    cfg = case_config(case["kwargs"], x0.shape[-1], case["diffusion"], rescale=True)
    model = build_with_upstream_weights(cfg, case["shapes"])
    diffusion = GaussianDiffusion.from_config(cfg.diffusion)
    with paddle.no_grad():
        terms = diffusion.training_losses(model, paddle.to_tensor(x0),
                                          paddle.to_tensor(DATA[f"{name}/t"]),
                                          noise=paddle.to_tensor(DATA[f"{name}/loss_noise"]),
                                          model_kwargs=kw)
    for key in ("mse", "vb", "loss"):
        close(terms[key].numpy(), DATA[f"{name}/loss_{key}"], rtol=1e-4)


@pytest.mark.parametrize("name", sorted(META["classifiers"]))
def test_classifier_logits_match_upstream(name):
    case = META["classifiers"][name]
    x = DATA[f"{name}/x"]
    cfg = case_config(case["kwargs"], x.shape[-1], classifier=True)
    model = build_with_upstream_weights(cfg, case["shapes"])
    with paddle.no_grad():
        logits = model(paddle.to_tensor(x), paddle.to_tensor(DATA[f"{name}/t"])).numpy()
    close(logits, DATA[f"{name}/logits"])


def test_cosine_4000_betas_and_respacing_match_upstream():
    np.testing.assert_allclose(get_beta_schedule("cosine", 4000, 0, 0),
                               DATA["cosine4000_betas"], rtol=1e-10, atol=0)   # float64 rounding
    for T, spec, steps in META["spacings"]:
        assert space_timesteps(T, spec) == steps, (T, spec)


def test_improved_cifar10_network_has_52_546_438_parameters():
    """Improved DDPM's CIFAR-10 net (its README's flags), built without running it."""
    cfg = Config()
    for key, value in dict(arch="adm", ch=128, ch_mult=[1, 2, 2, 2], num_res_blocks=3,
                           attn_resolutions=[16, 8], num_heads=4, dropout=0.3, learn_sigma=True,
                           use_scale_shift_norm=True, norm_eps=1e-5).items():
        set_value(cfg, f"model.{key}", value)
    cfg.diffusion.var_type = "learned_range"
    validate(cfg)
    with paddle.LazyGuard():
        model = build_model(cfg.model)
    assert count_parameters(model) == 52_546_438
