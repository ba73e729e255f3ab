"""The adm networks and their diffusion against improved-diffusion's and guided-diffusion's
own PyTorch code, through tests/fixtures/adm_parity.npz (tools/make_adm_fixture.py): every
weight random, outputs to ~1e-5 relative."""
import numpy as np
import paddle
import pytest

from helpers_adm import build_with_upstream_weights, case_shapes, fixture_case, load_fixture
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


NETS = sorted(META["cases"]) + sorted(META["flag_cases"])
CLASSIFIERS = sorted(META["classifiers"]) + sorted(META["flag_classifiers"])
WITH_DIFFUSION = [n for n in NETS if f"{n}/pmv_t" in DATA]


def _model(name, rescale):
    x = DATA[f"{name}/x"]
    cfg = fixture_case(META, name, x.shape[-1], rescale)
    return cfg, build_with_upstream_weights(cfg, case_shapes(META, name))


@pytest.mark.parametrize("name", NETS)
def test_network_output_matches_upstream(name):
    """The network called as upstream's is, with the raw timestep."""
    x, kw = _inputs(name)
    _, model = _model(name, rescale=False)
    with paddle.no_grad():
        out = model(x, paddle.to_tensor(DATA[f"{name}/t"]), **kw).numpy()
    close(out, DATA[f"{name}/out"])


def test_the_fixture_covers_what_the_issue_asks():
    cfgs = {n: fixture_case(META, n, DATA[f"{n}/x"].shape[-1], True).model for n in NETS}
    assert any(m.num_heads > 1 and not m.use_new_attention_order and m.num_head_channels == -1
               for m in cfgs.values())                         # legacy order, several heads
    assert any(m.use_new_attention_order for m in cfgs.values())
    assert any(m.resblock_updown for m in cfgs.values())
    assert {6, 7} <= {len(m.ch_mult) for m in cfgs.values()}
    assert any(m.time_embed_ch for m in cfgs.values())        # channel_mult 0.5
    assert any(m.rescale_timesteps for m in cfgs.values())
    assert any(m.num_classes == 1000 for m in cfgs.values())
    pools = {fixture_case(META, n, DATA[f"{n}/x"].shape[-1], True).model.classifier_pool
             for n in CLASSIFIERS}
    assert pools == {"attention", "adaptive", "spatial", "spatial_v2"}


def _diffusion(name, cfg):
    diffusion = GaussianDiffusion.from_config(cfg.diffusion)
    spec = (META["flag_cases"][name]["respacing"] if name in META["flag_cases"]
            else META["cases"][name]["diffusion"]["timestep_respacing"])
    return diffusion, (respace(diffusion, spec) if spec else diffusion)


@pytest.mark.parametrize("name", WITH_DIFFUSION)
def test_p_mean_variance_matches_upstream(name):
    """mean, log-variance and pred_x0 of the respaced chain (upstream's SpacedDiffusion),
    with rescaled timesteps where the case's flags ask for them."""
    x, kw = _inputs(name)
    cfg, model = _model(name, rescale=True)
    full, diffusion = _diffusion(name, cfg)
    case = META["flag_cases"].get(name) or META["cases"][name]
    np.testing.assert_allclose(full.betas, DATA[case["betas"]], rtol=1e-10, atol=0)  # float64 rounding
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


@pytest.mark.parametrize("name", WITH_DIFFUSION)
def test_training_losses_match_upstream(name):
    """The hybrid loss (rescaled as improved-diffusion does) and the unrescaled one."""
    _, kw = _inputs(name)
    x0 = DATA[f"{name}/loss_x0"]
    cfg, model = _model(name, rescale=True)
    diffusion, _ = _diffusion(name, cfg)
    with paddle.no_grad():
        terms = diffusion.training_losses(model, paddle.to_tensor(x0),
                                          paddle.to_tensor(DATA[f"{name}/t"]),
                                          noise=paddle.to_tensor(DATA[f"{name}/loss_noise"]),
                                          model_kwargs=kw)
    for key in ("mse", "vb", "loss"):
        close(terms[key].numpy(), DATA[f"{name}/loss_{key}"], rtol=1e-4)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_logits_match_upstream(name):
    _, model = _model(name, rescale=False)
    with paddle.no_grad():
        logits = model(paddle.to_tensor(DATA[f"{name}/x"]),
                       paddle.to_tensor(DATA[f"{name}/t"])).numpy()
    close(logits, DATA[f"{name}/logits"])


def test_cosine_4000_betas_and_respacing_match_upstream():
    np.testing.assert_allclose(get_beta_schedule("cosine", 4000, 0, 0),
                               DATA["betas/4000_cosine"], rtol=1e-10, atol=0)   # float64 rounding
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


def test_rescaled_kl_loss_matches_upstream_use_kl():
    """--use_kl True: the bound's term times T (upstream's RESCALED_KL), ppddpm's rescaled_kl."""
    name = "improved_cifar10"
    _, kw = _inputs(name)
    cfg, model = _model(name, rescale=True)
    cfg.diffusion.loss_type = "rescaled_kl"
    diffusion = GaussianDiffusion.from_config(cfg.diffusion)
    with paddle.no_grad():
        terms = diffusion.training_losses(model, paddle.to_tensor(DATA[f"{name}/loss_x0"]),
                                          paddle.to_tensor(DATA[f"{name}/t"]),
                                          noise=paddle.to_tensor(DATA[f"{name}/loss_noise"]),
                                          model_kwargs=kw)
    close(terms["loss"].numpy(), DATA[f"{name}/loss_rescaled_kl"], rtol=1e-4)
