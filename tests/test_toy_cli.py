"""The toy demo end to end: a shortened run_toy.py (the full demo's settings with fewer
iterations), then resume, convert, denoise (scatter, JSON, --sequence GIF, DDIM, npz) and
the Improved-DDPM options (cosine schedule, learned_range + hybrid, respacing, vlb with the
loss-aware timestep sampler)."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
from PIL import Image

from ppddpm.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = os.path.join(ROOT, "configs", "toy.yaml")
SHORT = ["--batchsize", "512", "--ema_decay", "0.99", "--warmup_steps", "50",
         "--num_images", "500-20-25", "--respacing", "100", "--ckpt_interval", "400"]


def cli(workdir, config=TOY, *args):
    """Run the shared CLI in this process (as run_toy.py does), with paths under workdir."""
    d = str(workdir)
    argv = ["--config", config, "--ckpt_dir", f"{d}/ckpts", "--sample_dir", f"{d}/sample",
            "--log_dir", f"{d}/log", "--quiet", *args]
    assert main(TOY, "test", argv=argv) == 0


def load_json(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "run_toy.py"), "--training_iters",
                           "800", *SHORT], cwd=d, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return d, proc.stdout


def test_shortened_demo_learns_the_25_modes_and_writes_its_figures(demo):
    d, stdout = demo
    out = d / "toy_out" / "gaussian25"
    assert sorted(os.listdir(out / "ckpts")) == [
        "ddpm_toy_i800.pdparam", "ddpm_toy_i800_ema.pdparam",
        "toy_ckpt_iter_400.pdparam", "toy_ckpt_iter_800.pdparam"]
    assert sorted(os.listdir(out / "sample")) == [
        "sample_iter800.gif", "sample_iter800.json", "sample_iter800.png"]
    q = load_json(out / "sample" / "sample_iter800.json")
    # 800 of the demo's 2000 iterations already find every mode; an untrained net finds none.
    assert q["dataset"] == "gaussian25" and q["num_samples"] == 500 and q["iteration"] == 800
    assert q["modes_total"] == 25 and q["modes_covered"] >= 20
    assert q["frac_within_3sigma"] > 0.4 and q["sliced_w1"] < 0.15
    assert q["sampler"] == "DDPM ancestral, 100 steps, fixed_small variance"
    assert q["true_data"]["frac_within_3sigma"] > 0.97
    assert f"{q['modes_covered']}/25 modes" in stdout and "sample_iter800.gif" in stdout
    png = Image.open(out / "sample" / "sample_iter800.png")
    assert png.size[0] > 2 * png.size[1] * 0.9          # two panels side by side
    gif = Image.open(out / "sample" / "sample_iter800.gif")
    assert gif.n_frames > 30                            # x_T, then ~40 states of the reverse process
    ckpt = paddle.load(str(out / "ckpts" / "toy_ckpt_iter_800.pdparam"))
    assert ckpt["config"]["model"]["arch"] == "mlp" and "timestep_sampler" not in ckpt


def test_resume_convert_and_denoise_reproduce_the_training_samples(demo, tmp_path):
    d, _ = demo
    out = d / "toy_out" / "gaussian25"
    cli(out, TOY, "--resume", "True", "--resume_ckpt_path", str(out / "ckpts" / "toy_ckpt_iter_800.pdparam"),
        "--training_iters", "850", *SHORT)
    assert os.path.exists(out / "sample" / "sample_iter850.json")
    cli(out, TOY, "--mode", "convert")
    ema = out / "ckpts" / "ddpm_toy_i850_ema.pdparam"
    assert os.path.exists(ema)
    # Denoising the EMA file with the training-time sampler settings and seed draws the
    # very points the trainer drew at iteration 850.
    cli(tmp_path, TOY, "--mode", "denoise", "--pretrained_path", str(ema), "--num_images",
        "500-20-25", "--respacing", "100", "--save_npz", "True", "--sample_postfix", "check")
    mine = load_json(tmp_path / "sample" / "sample_check.json")
    train = load_json(out / "sample" / "sample_iter850.json")
    for k in ("sliced_w1", "energy_distance", "frac_within_3sigma", "modes_covered"):
        assert mine[k] == train[k], k
    pts = np.load(tmp_path / "sample" / "check.npz")["points"]
    assert pts.shape == (500, 2) and pts.dtype == np.float32
    assert sorted(os.listdir(tmp_path / "sample")) == ["check.npz", "sample_check.json",
                                                      "sample_check.png"]


def test_denoise_sequence_gif_and_ddim(demo, tmp_path):
    d, _ = demo
    ema = d / "toy_out" / "gaussian25" / "ckpts" / "ddpm_toy_i800_ema.pdparam"
    cli(tmp_path, TOY, "--mode", "denoise", "--pretrained_path", str(ema), "--num_images",
        "300-15-20", "--sequence", "True", "--sampler", "ddim", "--ddim_steps", "20")
    files = sorted(os.listdir(tmp_path / "sample"))
    assert files == ["sequence_ddim_toy.gif", "sequence_ddim_toy.json",
                     "sequence_ddim_toy.png", "sequence_ddim_toy_frames.png"]
    q = load_json(tmp_path / "sample" / "sequence_ddim_toy.json")
    assert q["sampler"] == "DDIM, 20 steps, eta 0" and q["num_steps"] == 20
    gif = Image.open(tmp_path / "sample" / "sequence_ddim_toy.gif")
    assert gif.n_frames == 21                           # x_T and each of the 20 steps


def test_hybrid_learned_range_and_vlb_loss_aware_configs_train_and_sample(tmp_path):
    for name in ("toy_hybrid", "toy_vlb"):
        cfg = os.path.join(ROOT, "configs", f"{name}.yaml")
        w = tmp_path / name
        cli(w, cfg, "--training_iters", "30", "--batchsize", "256", "--num_images", "200-10-20",
            "--respacing", "10", "--ckpt_interval", "30", "--num_diffusion_steps", "100",
            "--beta_schedule", "cosine")
        ckpt = paddle.load(str(w / "ckpts" / f"{name}_ckpt_iter_30.pdparam"))
        assert ckpt["config"]["diffusion"]["var_type"] == "learned_range"
        assert ckpt["config"]["diffusion"]["beta_schedule"] == "cosine"
        assert ckpt["model"]["dense_out.weight"].shape[1] == 4    # mean and variance outputs
        q = load_json(w / "sample" / "sample_iter30.json")
        assert q["sampler"] == "DDPM ancestral, 10 steps, learned_range variance"
        assert np.isfinite(q["sliced_w1"])
        if name == "toy_vlb":   # 100 steps x 10 losses: warmed up within 30 iterations of 256
            assert ckpt["timestep_sampler"]["name"] == "loss_aware"
            assert np.asarray(ckpt["timestep_sampler"]["count"]).min() == 10
