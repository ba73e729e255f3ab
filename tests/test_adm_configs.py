"""configs/improved_cifar10.yaml and configs/adm_imagenet64_cond.yaml on the command line:
the published settings load as written, and, scaled down by a YAML on top, train, resume,
convert and sample (a sequence; the conditional one with --class_label)."""
import os

import paddle
from PIL import Image

from helpers_cli import ROOT, grid_size, in_process_cli, run
from helpers_data import make_fake_cifar10, make_fake_image_tree
from ppddpm.config import load_config

TINY_MODEL = "{ch: 32, num_res_blocks: 1, attn_resolutions: [16], dropout: 0.1}"


def test_the_configs_say_what_the_papers_ran():
    c = load_config(os.path.join(ROOT, "configs", "improved_cifar10.yaml"))
    m, d, t = c.model, c.diffusion, c.train
    assert (m.arch, m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.num_heads) == (
        "adm", 128, [1, 2, 2, 2], 3, [16, 8], 4)
    assert m.learn_sigma and m.use_scale_shift_norm and m.rescale_timesteps and m.dropout == 0.3
    assert (d.beta_schedule, d.num_diffusion_steps, d.var_type, d.loss_type) == (
        "cosine", 4000, "learned_range", "hybrid")
    assert (t.lr, t.batchsize, t.training_iters) == (1e-4, 128, 500000)
    c = load_config(os.path.join(ROOT, "configs", "adm_imagenet64_cond.yaml"))
    m = c.model
    assert (m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.num_head_channels) == (
        192, [1, 2, 3, 4], 3, [32, 16, 8], 64)
    assert m.resblock_updown and m.use_new_attention_order and c.train.conditional
    assert c.data.dataset == "folder" and c.diffusion.beta_schedule == "cosine"


def test_improved_cifar10_trains_resumes_converts_and_samples(tmp_path):
    make_fake_cifar10(str(tmp_path / "ds"), 4)
    (tmp_path / "tiny.yaml").write_text(
        f"base: {ROOT}/configs/improved_cifar10.yaml\n"
        f"model: {{{TINY_MODEL[1:-1]}, num_heads: 2}}\n"
        "diffusion: {num_diffusion_steps: 20}\n"
        "train: {batchsize: 4, training_iters: 2, sample_interval: 0, ckpt_interval: 2}\n"
        "data: {num_workers: 0}\nsample: {num_images: 4-2-2}\n")
    common = ["--config", "tiny.yaml", "--data_dir", "ds"]
    run("run_cifar10.py", *common, "--mode", "train", cwd=tmp_path)
    run("run_cifar10.py", *common, "--resume", "True", "--training_iters", "3", cwd=tmp_path)
    run("run_cifar10.py", *common, "--mode", "convert", cwd=tmp_path)
    inference = tmp_path / "ckpts" / "ddpm_improved_cifar10_i3_ema.pdparam"
    saved = paddle.load(str(inference))
    assert saved["config"]["model"]["arch"] == "adm" and len(saved["betas"]) == 20
    run("run_cifar10.py", *common, "--mode", "denoise", "--pretrained_path", str(inference),
        "--sequence", "True", "--sequence_every", "5", cwd=tmp_path)
    seq = Image.open(tmp_path / "sample" / "sample_ddpm_improved_cifar10.png")
    assert seq.size == grid_size(4, 4)   # 4 images x 20 / 5 frames


def test_adm_imagenet64_trains_on_class_folders_and_samples_a_class(tmp_path):
    make_fake_image_tree(str(tmp_path / "imgs"))
    (tmp_path / "tiny.yaml").write_text(
        f"base: {ROOT}/configs/adm_imagenet64_cond.yaml\n"
        f"model: {{{TINY_MODEL[1:-1]}, ch_mult: [1, 2], num_head_channels: 16, resolution: 32}}\n"
        "data: {image_size: 32, num_workers: 0, class_level: 2}\n"
        "diffusion: {num_diffusion_steps: 20}\n"
        "train: {batchsize: 4, training_iters: 2, sample_interval: 0, ckpt_interval: 2}\n"
        "sample: {num_images: 4-2-2, respacing: '5', class_label: male}\n")
    common = ["--config", "tiny.yaml", "--data_dir", "imgs"]
    run("run_imagenet64.py", *common, "--mode", "train", cwd=tmp_path)
    inference = tmp_path / "ckpts" / "ddpm_adm_imagenet64_i2_ema.pdparam"
    saved = paddle.load(str(inference))
    assert saved["config"]["model"]["num_classes"] == 2
    run("run_imagenet64.py", *common, "--mode", "denoise", "--pretrained_path", str(inference),
        "--class_label", "female", cwd=tmp_path)
    assert Image.open(tmp_path / "sample" / "sample_ddpm_adm_imagenet64_classfemale.png").size == grid_size(2, 2)


BAD = [("model.num_heads=5", "model.num_heads must be a divisor of every attention width"),
       ("model.num_head_channels=48", "model.num_head_channels must be a divisor"),
       ("model.num_heads_upsample=0", "model.num_heads_upsample must be -1 (not set) or >= 1"),
       ("model.classifier_pool=max", "model.classifier_pool='max' is not known"),
       ("model.ch=48", "model.ch must be a multiple of model.norm_groups=32"),
       ("diffusion.loss_type=rescaled", "diffusion.loss_type='rescaled' is not known")]


def test_bad_adm_settings_are_one_line_naming_the_key(tmp_path, capsys, monkeypatch):
    call = in_process_cli(tmp_path, capsys, monkeypatch,
                          f"base: {ROOT}/configs/improved_cifar10.yaml\n")
    for override, words in BAD:
        status, err = call("--mode", "denoise", "--pretrained_path", "x.pdparam", "-o", override)
        assert status == 2 and len(err.strip().splitlines()) == 1 and words in err, (override, err)
