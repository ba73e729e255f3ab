"""The CelebA-HQ workflow end to end through the command line, on a generated image tree in
the original layout (with a greyscale JPEG, an RGBA PNG and a corrupt file), at 32x32."""
import os

import numpy as np
import paddle
import pytest
from PIL import Image

from helpers_cli import ROOT, grid_size, run
from helpers_data import make_fake_image_tree
from ppddpm.config import load_config
from ppddpm.train.lr import lr_factor

TINY = """\
base: {root}/configs/celeba_hq.yaml
data: {{image_size: 32, num_workers: 0}}
model: {{ch: 32, ch_mult: [1, 2, 2], num_res_blocks: 1, resolution: 32}}
diffusion: {{num_diffusion_steps: 20, beta_end: 0.2}}
train: {{batchsize: 3, training_iters: 4, warmup_steps: 2, sample_interval: 4, ckpt_interval: 2}}
sample: {{num_images: 4-2-2, batchsize: 3}}
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("celeba")
    make_fake_image_tree(str(d / "celeba_hq"))
    (d / "tiny.yaml").write_text(TINY.format(root=ROOT))
    return d


def test_celeba_hq_workflow(workdir):
    d = workdir
    proc = run("run_celeba_hq.py", "--config", "tiny.yaml", "--data_dir", "celeba_hq", cwd=d)
    assert "skipped 1 unreadable image" in proc.stderr  # the corrupt file, counted once
    ckpts = sorted(os.listdir(d / "ckpts"))
    assert ckpts == ["celeba_hq_ckpt_iter_2.pdparam", "celeba_hq_ckpt_iter_4.pdparam",
                     "ddpm_celeba_hq_i4.pdparam", "ddpm_celeba_hq_i4_ema.pdparam"]
    assert Image.open(d / "sample" / "sample_iter4.png").size == grid_size(2, 2)

    run("run_celeba_hq.py", "--config", "tiny.yaml", "--data_dir", "celeba_hq", "--mode", "resume",
        "--training_iters", "6", cwd=d)
    ckpt = paddle.load(str(d / "ckpts" / "celeba_hq_ckpt_iter_6.pdparam"))
    assert ckpt["ckpt_idx"] == 5 and ckpt["config"]["model"]["arch"] == "fpn"
    run("run_celeba_hq.py", "--config", "tiny.yaml", "--mode", "convert", "--convert_ema", "False", cwd=d)
    raw = paddle.load(str(d / "ckpts" / "ddpm_celeba_hq_i6.pdparam"))
    for k, v in ckpt["model"].items():
        np.testing.assert_array_equal(np.asarray(raw["model"][k]), v.numpy())
    run("run_celeba_hq.py", "--config", "tiny.yaml", "--mode", "convert", cwd=d)
    inference = str(d / "ckpts" / "ddpm_celeba_hq_i6_ema.pdparam")

    run("run_celeba_hq.py", "--config", "tiny.yaml", "--mode", "denoise", "--pretrained_path", inference, cwd=d)
    assert Image.open(d / "sample" / "sample_ddpm_celeba_hq_test.png").size == grid_size(2, 2)
    run("run_celeba_hq.py", "--config", "tiny.yaml", "--mode", "denoise", "--pretrained_path", inference,
        "--sequence", "True", "--num_images", "2-1-2", cwd=d)
    # 20 steps / 20 frames: one column per step, one row per image.
    assert Image.open(d / "sample" / "sample_ddpm_celeba_hq_test.png").size == grid_size(2, 20)
    run("run_celeba_hq_ddim.py", "--config", "tiny.yaml", "--pretrained_path", inference,
        "--stride", "5", "--skip", "quadratic", "--ddim_steps", "3", cwd=d)
    assert Image.open(d / "sample" / "sample_ddim_celeba_hq_test.png").size == grid_size(2, 2)


def test_empty_image_folder_is_a_clear_error(workdir, tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run("run_celeba_hq.py", "--config", str(workdir / "tiny.yaml"), "--data_dir",
               str(tmp_path / "empty"), cwd=tmp_path, expect=2)
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_real_fpn_forward_backward_at_128():
    from ppddpm.models import build_model
    cfg = load_config(os.path.join(ROOT, "configs", "celeba_hq.yaml"))
    model = build_model(cfg.model)
    x = paddle.randn([1, 3, 128, 128])
    out = model(x, paddle.to_tensor([999], dtype="int64"))
    assert out.shape == [1, 3, 128, 128]
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.shape == p.shape for g, p in zip(grads, model.parameters()))


def test_celeba_lr_schedule_values():
    cfg = load_config(os.path.join(ROOT, "configs", "celeba_hq.yaml")).train
    f = lambda s: cfg.lr * lr_factor(s, cfg.warmup_steps, cfg.training_iters, cfg.lr_decay)
    assert (cfg.lr, cfg.warmup_steps, cfg.training_iters, cfg.lr_decay) == (2e-4, 5000, 1000000, "linear")
    assert f(0) == pytest.approx(2e-4 / 5000)                   # first update of the warm-up
    assert f(4999) == pytest.approx(2e-4)                       # end of warm-up
    half = 5000 + (1000000 - 5000) // 2
    assert f(half) == pytest.approx(2e-4 * (1000000 - half) / 995000)  # halfway down: ~1e-4
    assert f(half) == pytest.approx(1e-4, rel=1e-5)
    assert f(999999) == pytest.approx(2e-4 / 995000)           # last update; 0 after it
    assert f(1000000) == 0.0
    cifar = load_config(os.path.join(ROOT, "configs", "cifar10.yaml")).train
    g = lambda s: cifar.lr * lr_factor(s, cifar.warmup_steps, cifar.training_iters, cifar.lr_decay)
    assert g(0) == pytest.approx(4e-8) and g(4999) == g(400000) == g(799999) == pytest.approx(2e-4)
