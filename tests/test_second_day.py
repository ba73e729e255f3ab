"""A new user's second day (issue 22), through the command line: no silent failure, no
output overwritten or misnamed, no flag left unread."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from helpers_cli import ROOT, run, tiny_cifar10_yaml
from helpers_data import make_fake_cifar10

from ppddpm.cli import main
from ppddpm.config import apply_overrides, load_config, validate
from ppddpm.convert.pretrained import save_inference_file
from ppddpm.diffusion import get_beta_schedule
from ppddpm.models import build_model

CIFAR = os.path.join(ROOT, "configs", "cifar10.yaml")
MNIST = os.path.join(ROOT, "configs", "mnist.yaml")
TINY = ["model.ch=32", "model.ch_mult=[1,2]", "model.num_res_blocks=1", "model.attn_resolutions=[]",
        "diffusion.num_diffusion_steps=50", "diffusion.beta_end=0.2"]
FAST = ["--engine", "dygraph", "--quiet"]


def make_file(path, *overrides, config=CIFAR, seed=0):
    """An inference file of a tiny random UNet, as training writes it."""
    import paddle
    cfg = load_config(config)
    apply_overrides(cfg, TINY + list(overrides))
    validate(cfg)
    cfg.sample.sample_postfix = cfg.sample.sample_postfix.replace("{sampler}", cfg.sample.sampler)
    d = cfg.diffusion
    paddle.seed(seed)
    save_inference_file(str(path), build_model(cfg.model).state_dict(),
                        get_beta_schedule(d.beta_schedule, d.num_diffusion_steps, d.beta_start,
                                          d.beta_end), {}, cfg)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    return {"dir": d, "uncond": make_file(d / "ddpm_cifar10_i400_ema.pdparam"),
            "cond": make_file(d / "cond_ema.pdparam", "model.num_classes=10"),
            "short": make_file(d / "short.pdparam", "diffusion.num_diffusion_steps=20",
                               "diffusion.beta_end=0.02")}


def cli(tmp_path, capsys, *argv, config=CIFAR, preset=(), mode="train"):
    """(status, stderr lines) of the shared entry, run from tmp_path."""
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        status = main(config, "test", preset=preset, default_mode=mode, argv=list(argv))
    finally:
        os.chdir(old)
    return status, capsys.readouterr().err.strip().splitlines()


def one_error(status, err):
    assert status == 2, err
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


# 1. A short chain never reaches noise: said at training and at sampling time.

def test_linear_scaled_is_improved_diffusions_linear_and_reaches_noise():
    for T in (50, 100, 4000):
        scale = 1000 / T
        np.testing.assert_allclose(get_beta_schedule("linear_scaled", T, 1e-4, 0.02),
                                   np.linspace(1e-4 * scale, 0.02 * scale, T), rtol=1e-15)
    assert np.prod(1 - get_beta_schedule("linear_scaled", 50)) < 1e-2
    assert np.prod(1 - get_beta_schedule("linear", 50)) > 0.5       # Ho's literal betas
    assert get_beta_schedule("linear_scaled", 10).max() == 0.999      # 0.02 * 100 capped


def test_short_chain_is_warned_at_train_and_sample_time(tmp_path, files):
    make_fake_cifar10(str(tmp_path / "ds"), 2)
    (tmp_path / "tiny.yaml").write_text(tiny_cifar10_yaml(
        "{batchsize: 2, training_iters: 1, warmup_steps: 1, sample_interval: 0, ckpt_interval: 0}"))
    short = ["--config", "tiny.yaml", "--data_dir", "ds", "--num_diffusion_steps", "20"]
    proc = run("run_cifar10.py", *short, "--beta_end", "0.02", "--ckpt_dir", "c1", cwd=tmp_path)
    warning = [l for l in proc.stderr.splitlines() if l.startswith("warning:")]
    assert len(warning) == 1, proc.stderr
    assert "alpha-bar_T = 0.817" in warning[0] and "--beta_end" in warning[0]
    assert "linear_scaled" in warning[0] and "cosine" in warning[0]
    assert os.path.exists(tmp_path / "c1" / "ddpm_cifar10_i1_ema.pdparam")   # it still trains
    proc = run("run_cifar10.py", *short, "--beta_end", "0.02", "--beta_schedule", "linear_scaled",
               "--ckpt_dir", "c2", cwd=tmp_path)
    assert "warning" not in proc.stderr
    proc = run("run_cifar10.py", "--mode", "denoise", "--pretrained_path", files["short"],
               "--num_images", "1", "--sample_dir", "s", "--engine", "dygraph", cwd=tmp_path)
    assert "warning: " in proc.stderr and "alpha-bar_T = 0.817" in proc.stderr
    assert "retrain" in proc.stderr


# 2. Ctrl-C during denoise keeps the finished batches; the same command goes on from them.

def test_ctrl_c_in_denoise_keeps_batches_and_a_rerun_goes_on(tmp_path, files):
    args = ["--mode", "denoise", "--pretrained_path", files["uncond"], "--num_images", "12-3-4",
            "-o", "sample.batchsize=2", "--save_individual", "True", "--engine", "dygraph"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    cmd = [sys.executable, os.path.join(ROOT, "run_cifar10.py"), *args, "--quiet"]
    partial = tmp_path / "sample" / "sample_ddpm_cifar10_test.partial"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if partial.is_dir() and len(list(partial.glob("*.npy"))) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "goes on from the batches already drawn" in err and "Traceback" not in err
    chunks = sorted(p.name for p in partial.glob("*.npy"))
    assert 2 <= len(chunks) < 6
    pngs = sorted(p.name for p in (tmp_path / "sample" / "ddpm_cifar10_test").glob("*.png"))
    assert len(pngs) >= 2 * len(chunks) - 2        # each finished batch's PNGs are on disk
    assert not (tmp_path / "sample" / "sample_ddpm_cifar10_test.png").exists()
    # the rerun goes on from them, and gives the images of an uninterrupted run
    again = run("run_cifar10.py", *args, cwd=tmp_path, quiet=False)
    assert f"going on from {2 * len(chunks)} of 12 images" in again.stdout
    assert not partial.exists()
    whole = run("run_cifar10.py", *args, "--sample_dir", "whole", cwd=tmp_path)
    grid = lambda d: np.asarray(Image.open(tmp_path / d / "sample_ddpm_cifar10_test.png"))
    np.testing.assert_array_equal(grid("sample"), grid("whole"))
    assert len(list((tmp_path / "sample" / "ddpm_cifar10_test").glob("*.png"))) == 12
    assert whole.returncode == 0


def test_a_partial_folder_of_other_settings_is_refused(tmp_path, capsys, files):
    base = ["--mode", "denoise", "--pretrained_path", files["uncond"], "--num_images", "2",
            *FAST]
    partial = tmp_path / "sample" / "sample_ddpm_cifar10_test.partial"
    partial.mkdir(parents=True)
    (partial / "meta.json").write_text('{"seed": 99}')
    line = one_error(*cli(tmp_path, capsys, *base))
    assert "holds samples of other settings" in line and "seed: 99 -> 0" in line


# 3. Flags that nothing reads.

@pytest.mark.parametrize("argv, words", [
    (["--sampler", "ddpm", "--steps", "3"], ["--steps 3", "ddpm", "--respacing 3"]),
    (["--sampler", "ddpm", "-o", "sample.stride=5"], ["-o sample.stride=5", "ddpm"]),
    (["--sampler", "ddim", "--order", "3"], ["--order 3", "ddim", "first-order"]),
    (["--sampler", "ddpm", "--eta", "0.5"], ["--eta 0.5", "ddpm", "read by --sampler ddim"]),
    (["--sampler", "unipc", "--eta", "1"], ["--eta 1", "unipc", "ddim"]),
    (["--sampler", "dpm_solver++", "--skip", "quadratic"], ["--skip quadratic", "dpm_solver++"]),
    (["--resume", "True"], ["--resume True", "--mode denoise", "--mode train"]),
    (["--num_samples", "10"], ["--num_samples 10", "--mode denoise", "--mode eval"]),
])
def test_unread_flags_are_one_error_line(tmp_path, capsys, files, argv, words):
    line = one_error(*cli(tmp_path, capsys, "--mode", "denoise", "--pretrained_path",
                          files["uncond"], *argv, *FAST))
    for word in words:
        assert word in line, line
    assert not (tmp_path / "sample").exists()


def test_flags_read_by_the_sampler_are_accepted(tmp_path, capsys, files):
    status, err = cli(tmp_path, capsys, "--mode", "denoise", "--pretrained_path", files["uncond"],
                      "--sampler", "dpm_solver++", "--steps", "3", "--order", "2",
                      "--num_images", "1", *FAST)
    assert status == 0, err
    status, err = cli(tmp_path, capsys, "--mode", "denoise", "--pretrained_path", files["uncond"],
                      "--sampler", "ddpm", "--respacing", "5", "--num_images", "1", *FAST)
    assert status == 0, err


# 4. A denoise that names model keys compares only those.

def test_typed_model_keys_alone_are_compared(tmp_path, capsys, files):
    status, err = cli(tmp_path, capsys, "--mode", "denoise", "--pretrained_path", files["cond"],
                      "-o", "model.ch=32", "model.ch_mult=[1,2]", "--class_label", "3",
                      "--num_images", "1", *FAST)
    assert status == 0, err
    line = one_error(*cli(tmp_path, capsys, "--mode", "denoise", "--pretrained_path",
                          files["cond"], "-o", "model.ch=64", "model.ch_mult=[1,2]", *FAST))
    assert "model.ch: file has 32, expected 64" in line
    assert "ch_mult" not in line and "num_classes" not in line


# 5. Messages that say what went wrong.

def test_a_png_as_weights_says_it_is_an_image(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "pic.png")
    line = one_error(*cli(tmp_path, capsys, "--mode", "denoise", "--pretrained_path", "pic.png",
                          *FAST))
    assert "'pic.png' is a PNG image, not a weights file" in line
    assert "Unpickling" not in line and "corrupt" not in line


def test_a_diffusers_folder_as_weights_names_the_converter(tmp_path, capsys):
    folder = tmp_path / "ddpm-church"
    shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "diffusers_tiny"), folder)
    line = one_error(*cli(tmp_path, capsys, "--mode", "denoise", "--pretrained_path",
                          str(folder), *FAST))
    assert "is a diffusers model folder" in line
    assert f"python -m ppddpm.convert --from diffusers --src {folder}" in line


def test_resume_from_an_inference_file_says_what_it_is(tmp_path, capsys, files):
    line = one_error(*cli(tmp_path, capsys, "--mode", "resume", "--resume_ckpt_path",
                          files["uncond"], *FAST))
    assert "is an inference file" in line and "--mode denoise" in line
    assert "convert" not in line


def test_a_file_as_data_dir_is_called_a_file(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    line = one_error(*cli(tmp_path, capsys, "--data_dir", "notes.txt", "--training_iters", "1",
                          *FAST, config=MNIST))
    assert "'notes.txt' is a file, not a folder" in line and "does not exist" not in line


def test_steps_0_names_both_of_its_flags(tmp_path, capsys, files):
    line = one_error(*cli(tmp_path, capsys, "--mode", "denoise", "--pretrained_path",
                          files["uncond"], "--sampler", "ddim", "--steps", "0", *FAST))
    assert "--ddim_steps / --steps / sample.num_steps must be >= 1, got 0" in line


def test_convert_of_an_empty_folder_names_it_once(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "ppddpm.convert", "--from", "diffusers", "--src",
                           "empty", "--out", "x.pdparam"], cwd=tmp_path, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("'empty'") == 1, proc.stderr


def test_load_pretrained_errors_name_no_flags(tmp_path):
    from ppddpm import load_pretrained
    from ppddpm.errors import CheckpointError
    with pytest.raises(CheckpointError) as exc:
        load_pretrained(str(tmp_path / "nothere.pdparam"))
    assert "--" not in str(exc.value)


def test_a_converted_diffusers_model_samples_under_its_own_name(tmp_path, capsys):
    src = tmp_path / "ddpm-church-256"
    shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "diffusers_tiny"), src)
    proc = subprocess.run([sys.executable, "-m", "ppddpm.convert", "--from", "diffusers", "--src",
                           str(src), "--out", "church.pdparam"], cwd=tmp_path,
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    status, err = cli(tmp_path, capsys, "--mode", "denoise", "--pretrained_path", "church.pdparam",
                      "--num_images", "1", "--sampler", "ddim", "--steps", "2", *FAST)
    assert status == 0, err
    assert os.listdir(tmp_path / "sample") == ["sample_ddim_ddpm-church-256.png"]
    assert not any("'ddpm_cifar10_test'" in line for line in err)


# 6-7. A sampler's output bears its own name; runs do not overwrite each other.

def test_each_sampler_and_each_class_writes_its_own_grid(tmp_path, capsys, files):
    one = ["--num_images", "1", "--pretrained_path", files["uncond"], *FAST]
    assert cli(tmp_path, capsys, *one, config=os.path.join(ROOT, "configs", "celeba_hq.yaml"),
               preset=["sample.sampler=ddim"], mode="denoise")[0] == 0
    assert cli(tmp_path, capsys, *one, "--mode", "denoise", "--sampler", "dpm_solver++",
               "--steps", "2", config=MNIST)[0] == 0
    assert cli(tmp_path, capsys, *one, "--mode", "denoise")[0] == 0
    cond = ["--mode", "denoise", "--pretrained_path", files["cond"], "--num_images", "1", *FAST]
    assert cli(tmp_path, capsys, *cond, "--class_label", "3")[0] == 0
    assert cli(tmp_path, capsys, *cond, "--class_label", "3", "--guidance_scale", "2")[0] == 0
    assert cli(tmp_path, capsys, *cond)[0] == 0
    assert sorted(os.listdir(tmp_path / "sample")) == [
        "sample_ddim_cifar10_test.png", "sample_ddpm_cifar10_test.png",
        "sample_ddpm_cifar10_test_class3.png", "sample_ddpm_cifar10_test_class3_w2.png",
        "sample_ddpm_cifar10_test_nolabel.png", "sample_dpm_solver++_cifar10_test.png"]


# 8. --sequence keeps the original's name for its main image.

def test_sequence_writes_sample_postfix_png(tmp_path, capsys, files):
    status, err = cli(tmp_path, capsys, "--mode", "denoise", "--pretrained_path", files["uncond"],
                      "--sequence", "True", "--num_images", "2", "--sample_postfix",
                      "ddpm_cifar10_sequence", *FAST)
    assert status == 0, err
    assert sorted(os.listdir(tmp_path / "sample")) == [
        "sample_ddpm_cifar10_sequence.gif", "sample_ddpm_cifar10_sequence.png",
        "sample_ddpm_cifar10_sequence_xt.png"]
    # one row per image, one column per frame (50 steps, every 2: 25 frames + the end)
    w, h = Image.open(tmp_path / "sample" / "sample_ddpm_cifar10_sequence.png").size
    assert h == 2 * 32 + 3 * 2 and (w - 2) % 34 == 0


# 9. --save_path writes the format its extension names.

def test_save_path_writes_what_its_extension_names(tmp_path, capsys, files):
    base = ["--mode", "denoise", "--pretrained_path", files["uncond"], "--num_images", "1", *FAST]
    assert cli(tmp_path, capsys, *base, "--save_path", "out.jpg")[0] == 0
    assert Image.open(tmp_path / "out.jpg").format == "JPEG"
    assert cli(tmp_path, capsys, *base, "--save_path", "out.webp")[0] == 0
    assert Image.open(tmp_path / "out.webp").format == "WEBP"
    line = one_error(*cli(tmp_path, capsys, *base, "--save_path", "out.txt"))
    assert "out.txt" in line and ".png" in line
    assert not (tmp_path / "out.txt").exists()


# 12. A conditional run says it is one.

def test_the_sampling_line_names_classes_and_guidance(tmp_path, files):
    proc = run("run_cifar10.py", "--mode", "denoise", "--pretrained_path", files["cond"],
               "--num_images", "2-2-1", "--class_label", "3,5", "--guidance_scale", "1.5",
               "--engine", "dygraph", cwd=tmp_path, quiet=False)
    line = next(l for l in proc.stdout.splitlines() if l.startswith("sampling"))
    assert line.endswith("classes 3,5, classifier-free guidance 1.5"), line


def test_class_tags_name_every_conditioning():
    from ppddpm.pipeline import class_tag
    from ppddpm.config import SampleConfig
    s = SampleConfig()
    assert class_tag(s, None) == ""                         # unconditional: the original's name
    assert class_tag(s, 10) == "_nolabel"
    assert class_tag(s, None, classifier_scale=1.0) == "_classrandom_cg1"
    s.class_label, s.guidance_scale = "3, 5", 2.0
    assert class_tag(s, 10) == "_class3-5_w2"
    assert class_tag(s, 10, classifier_scale=0.5) == "_class3-5_cg0.5"
