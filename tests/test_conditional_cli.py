"""Class-conditional training and guided sampling end to end on the toy set gaussian8 (each of
its 8 modes a class, configs/toy_cond.yaml), and the command line's refusals."""
import json
import os

import numpy as np
import paddle
import pytest

from helpers_cli import run

from ppddpm.cli import main
from ppddpm.config import load_config
from ppddpm.models import build_model
from ppddpm.convert.pretrained import save_inference_file
from ppddpm.toy.output import summary
from ppddpm.diffusion.schedules import get_beta_schedule

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = os.path.join(ROOT, "configs", "toy.yaml")
COND = os.path.join(ROOT, "configs", "toy_cond.yaml")


def cli(workdir, *args, config=COND):
    d = str(workdir)
    return main(TOY, "test", argv=["--config", config, "--ckpt_dir", f"{d}/ckpts",
                                   "--sample_dir", f"{d}/sample", "--log_dir", f"{d}/log",
                                   "--quiet", *args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """run_toy.py --config configs/toy_cond.yaml, shortened to 500 iterations of 256 points
    (at twice the learning rate)."""
    d = tmp_path_factory.mktemp("toy_cond")
    assert cli(d, "--training_iters", "500", "--batchsize", "256", "--lr", "0.004",
               "--ema_decay", "0.98",
               "--warmup_steps", "50", "--ckpt_interval", "500", "--num_images", "16-8-2",
               "--respacing", "20") == 0
    return d, str(d / "ckpts" / "ddpm_toy_cond_i500_ema.pdparam")


def denoise(d, weights, postfix, *args):
    # DDIM with x0 clipping and no extra flag: guided runs re-derive eps from the clipped
    # x0 by default (the model's eps beside a clipped x0 overshoots on this model: README,
    # "Guided DDIM and x0 clipping").
    assert cli(d, "--mode", "denoise", "--pretrained_path", weights, "--sampler", "ddim",
               "--ddim_steps", "50", "--sample_postfix", postfix, *args) == 0
    with open(d / "sample" / f"sample_{postfix}.json") as f:
        return json.load(f)


def test_samples_land_in_the_requested_mode_and_guidance_sharpens_them(trained):
    d, weights = trained
    ckpt = paddle.load(str(d / "ckpts" / "toy_cond_ckpt_iter_500.pdparam"))
    assert ckpt["config"]["model"]["num_classes"] == 8
    assert ckpt["config"]["data"]["class_names"] == [f"mode{k}" for k in range(8)]
    with open(d / "sample" / "sample_iter500.json") as f:   # the training's samples: labelled too
        assert "frac_in_requested_mode" in json.load(f)
    # --class_label all on 400-8-50: one row of 50 points per mode
    plain = denoise(d, weights, "w0", "--class_label", "all", "--num_images", "400-8-50",
                    "--guidance_scale", "0")
    guided = denoise(d, weights, "w1", "--class_label", "all", "--num_images", "400-8-50",
                     "--guidance_scale", "1")
    assert plain["frac_in_requested_mode"] >= 0.95 and guided["frac_in_requested_mode"] >= 0.95
    # CFG's trade: guidance concentrates each class on its mode (an unlabelled model, or
    # labels ignored, would put 1/8 of the points in the requested mode)
    assert guided["frac_within_3sigma_of_requested"] > plain["frac_within_3sigma_of_requested"]
    assert guided["spread_rms"] < plain["spread_rms"]
    assert guided["frac_within_3sigma_of_requested"] >= 0.95
    # one class by its name, read from the inference file's config
    one = denoise(d, weights, "mode3", "--class_label", "mode3", "--num_images", "50-1-50",
                  "--guidance_scale", "1", "--save_npz", "True")
    assert one["frac_in_requested_mode"] >= 0.95
    # the line a person reads scores the class asked for, not all 8 modes ("1/8 modes")
    line = summary(one)
    assert line.startswith("gaussian8, requested classes: ") and "modes," not in line
    assert f"{100 * one['frac_in_requested_mode']:.1f}% in the requested mode" in line
    saved = np.load(d / "sample" / "mode3.npz")
    assert saved["labels"].tolist() == [3] * 50
    means = np.array([np.cos(3 * np.pi / 4), np.sin(3 * np.pi / 4)]) * 2 / 2.828
    assert np.median(np.linalg.norm(saved["points"] - means, axis=1)) < 0.05


def test_class_label_errors_in_process(trained, capsys):
    d, weights = trained
    common = ["--mode", "denoise", "--pretrained_path", weights, "--num_images", "16-8-2"]
    cases = [(TOY, ["--guidance_scale", "2"], "--guidance_scale 2 needs --class_label"),
             (COND, ["--class_label", "0,1,2"], "multiple of 3"),
             (COND, ["--class_label", "1", "--guidance_scale", "-1"], "guidance_scale must be >= 0"),
             (COND, ["--class_label", "cat"], "--class_label 'cat' is not a class of this model; "
                                              "give names ['mode0', 'mode1'")]
    for config, extra, message in cases:
        assert cli(d, *common, *extra, config=config) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert cli(d, "-o", "model.num_classes=5", "--training_iters", "1") == 2
    assert "model.num_classes=5, but data.dataset='gaussian8' has 8 classes" in capsys.readouterr().err


def test_a_data_set_without_labels_refuses_conditional_training(tmp_path):
    proc = run("run_toy.py", "--config", COND, "-o", "data.dataset=scurve", "--training_iters", "1",
               "--ckpt_dir", str(tmp_path / "c"), cwd=tmp_path, expect=2)
    assert proc.stderr.startswith("error: --conditional True needs a labelled data set")
    assert "'scurve' has no class labels" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unconditional_model_refuses_class_label(tmp_path):
    cfg = load_config(TOY)
    weights = str(tmp_path / "uncond.pdparam")
    d = cfg.diffusion
    save_inference_file(weights, build_model(cfg.model).state_dict(),
                        get_beta_schedule(d.beta_schedule, d.num_diffusion_steps, d.beta_start,
                                          d.beta_end), {}, cfg)
    proc = run("run_toy.py", "--mode", "denoise", "--pretrained_path", weights, "--class_label",
               "3", "--sample_dir", str(tmp_path / "s"), cwd=tmp_path, expect=2)
    assert proc.stderr.startswith("error: --class_label 3 needs a class-conditional model")
    assert "Traceback" not in proc.stderr
