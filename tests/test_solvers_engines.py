"""The solvers on a real network: the Paddle Inference engine gives the dynamic graph's
samples, and 2 gloo ranks give the single process's images (one spawn for all solvers)."""
import numpy as np
import paddle
import paddle.distributed as dist

from dist_workers import tiny_config

from ppddpm.config import ModelConfig
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.engines.predictor import InferenceModel
from ppddpm.models import build_model
from ppddpm.convert.pretrained import save_inference_file
from ppddpm.samplers import DPMSolverPPSampler, DPMSolverSampler, UniPCSampler
from ppddpm.diffusion.schedules import get_beta_schedule

SHAPE = [3, 16, 16]
SOLVERS = (("dpm_solver++", "2"), ("dpm_solver", "3"), ("unipc", "3"))


def denoise_all(base_argv):
    """One rank's work: a denoise run per solver (run by paddle.distributed.spawn)."""
    from dist_workers import denoise
    for name, order in SOLVERS:
        denoise(base_argv + ["--sampler", name, "--order", order,
                             "--sample_postfix", name.replace("+", "p")])


def test_inference_engine_gives_the_dygraph_samples(tmp_path):
    cfg = ModelConfig(ch=16, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[8],
                      resolution=16, dropout=0.0, norm_groups=8)
    paddle.seed(0)
    net = build_model(cfg)
    rng = np.random.default_rng(0)
    for p in net.parameters():   # no zero output layers: the samples depend on the weights
        p.set_value(p.numpy() + rng.normal(0, 0.05, p.shape).astype("float32"))
    net.eval()
    engine = InferenceModel(net, SHAPE, cache_dir=str(tmp_path), threads=1)
    # a mild schedule (abar_T ~ 0.6), as in test_engine.py, so float32 rounding stays small
    d = GaussianDiffusion(get_beta_schedule("linear", 20, 1e-4, 0.05))
    for sampler in (DPMSolverPPSampler(d, num_steps=5, order=3),
                    DPMSolverSampler(d, num_steps=5, order=3, spacing="logsnr"),
                    UniPCSampler(d, num_steps=5, order=2, spacing="trailing")):
        a = sampler.sample(engine, [2] + SHAPE, seed=4, progress=False).numpy()
        b = sampler.sample(net, [2] + SHAPE, seed=4, progress=False).numpy()
        assert a.std() > 0.1
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_two_ranks_give_the_single_process_images(tmp_path):
    cfg = tiny_config(str(tmp_path))
    paddle.seed(1)
    model = build_model(cfg.model)
    for p in model.parameters():
        p.set_value(paddle.randn(p.shape) * 0.05)
    weights = str(tmp_path / "tiny.pdparam")
    save_inference_file(weights, model.state_dict(),
                        GaussianDiffusion.from_config(cfg.diffusion).betas, {}, cfg)
    common = ["--mode", "denoise", "--pretrained_path", weights, "--num_images", "3-1-3",
              "--batchsize", "2", "--save_npz", "True", "--quiet", "--engine", "dygraph",
              "--steps", "4", "--spacing", "logsnr"]   # (--skip is DDIM's: refused here)
    dist.spawn(denoise_all, args=(common + ["--sample_dir", str(tmp_path / "two")],), nprocs=2,
               backend="gloo")
    denoise_all(common + ["--sample_dir", str(tmp_path / "one")])
    for name, _ in SOLVERS:
        two = np.load(tmp_path / "two" / f"{name.replace('+', 'p')}.npz")["arr_0"]
        one = np.load(tmp_path / "one" / f"{name.replace('+', 'p')}.npz")["arr_0"]
        assert two.shape == (3, 16, 16, 3)
        np.testing.assert_array_equal(two, one)
        assert len({im.tobytes() for im in one}) == 3
