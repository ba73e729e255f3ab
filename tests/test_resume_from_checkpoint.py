"""Resume and convert follow the checkpoint: the config stored in a training checkpoint
rebuilds the model, the diffusion and the data settings, so no architecture flag is repeated;
flags typed on the command line apply on top, and a change of the model or the diffusion is
refused in one line. Convert writes to --pretrained_path, never over a training checkpoint."""
import hashlib
import os

import numpy as np
import paddle
import pytest

from helpers_cli import ROOT, run
from helpers_data import make_fake_cifar10
from ppddpm.cli.parse import parse_command_line
from ppddpm.cli import main, resolve_config

TINY = """\
base: {root}/configs/cifar10.yaml
model: {{ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], norm_groups: 8}}
train: {{batchsize: 2, warmup_steps: 2, sample_interval: 0, ckpt_interval: 2}}
data: {{num_workers: 0}}
"""
# Architecture and diffusion given on the command line only: the YAML has ch 128, T 1000.
ARCH = ["-o", "model.ch=8", "model.dropout=0.1", "--num_diffusion_steps", "20"]


def digest(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A: 4 iterations in one go. B: 2 iterations, then resumed to 4 with no architecture flag."""
    d = tmp_path_factory.mktemp("resume")
    make_fake_cifar10(str(d / "ds"), 8)
    (d / "tiny.yaml").write_text(TINY.format(root=ROOT))
    common = ["--config", "tiny.yaml", "--data_dir", "ds", *ARCH]
    # Run A also draws a sample grid at its end, with bars asked for (no --quiet) while
    # stderr is a pipe: the log must hold no carriage returns or escape codes.
    proc = run("run_cifar10.py", *common, "--training_iters", "4", "--ckpt_dir", "a",
               "--log_dir", "la", "--sample_interval", "4", "--sample_dir", "sa",
               "--num_images", "4-2-2", cwd=d, quiet=False)
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr, repr(proc.stderr[:300])
    assert "\r" not in proc.stdout and "trained 4 iterations" in proc.stdout
    assert (d / "sa" / "sample_iter4.png").exists()
    run("run_cifar10.py", *common, "--training_iters", "2", "--ckpt_dir", "b", "--log_dir", "lb", cwd=d)
    run("run_cifar10.py", "--config", "tiny.yaml", "--mode", "resume", "--resume_ckpt_path",
        "b/cifar10_ckpt_iter_2.pdparam", "--training_iters", "4", cwd=d)
    return d


def test_resume_without_repeating_overrides_is_exact(runs):
    a = paddle.load(str(runs / "a" / "cifar10_ckpt_iter_4.pdparam"))
    b = paddle.load(str(runs / "b" / "cifar10_ckpt_iter_4.pdparam"))
    assert b["config"]["model"]["ch"] == 8 and b["config"]["diffusion"]["num_diffusion_steps"] == 20
    assert b["config"]["data"]["data_dir"] == "ds" and len(b["betas"]) == 20
    for part in ("model", "model_ema"):
        assert sorted(a[part]) == sorted(b[part])
        for k in a[part]:
            np.testing.assert_array_equal(a[part][k].numpy(), b[part][k].numpy(), err_msg=k)
    # The resumed run logged to the checkpoint's log folder, the same losses as the run in one go
    # (step, tag, value; the last column is the run id, which differs between the two runs).
    losses = lambda d: [l.rsplit(",", 1)[0] for l in (runs / d / "scalars.csv").read_text().splitlines()
                        if ",loss," in l]
    assert losses("la") == losses("lb") and len(losses("la")) == 4


def test_contradicting_override_is_refused(runs, capsys, monkeypatch):
    ckpt = runs / "b" / "cifar10_ckpt_iter_4.pdparam"
    before = digest(ckpt)
    resume = ["--config", "tiny.yaml", "--mode", "resume", "--resume_ckpt_path", str(ckpt),
              "--training_iters", "6"]
    proc = run("run_cifar10.py", *resume, "--num_diffusion_steps", "50", cwd=runs, expect=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "with --num_diffusion_steps 50: diffusion.num_diffusion_steps: file has 20, " \
           "expected 50" in lines[0]
    # The same refusal for -o (in this process: the path through main is the same).
    monkeypatch.chdir(runs)
    assert main(os.path.join(ROOT, "configs", "cifar10.yaml"), "t",
                argv=resume + ["-o", "model.ch=16", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "with -o model.ch=16: model.ch: file has 8, expected 16" in err[0]
    assert digest(ckpt) == before and not (runs / "b" / "cifar10_ckpt_iter_6.pdparam").exists()


def test_convert_writes_pretrained_path_and_never_the_training_file(runs, monkeypatch):
    ckpt = runs / "b" / "cifar10_ckpt_iter_4.pdparam"
    before = digest(ckpt)
    out = runs / "converted" / "mine.pdparam"
    # The original reproduction's convert command (in this process; main parses it as the
    # script does).
    monkeypatch.chdir(runs)
    assert main(os.path.join(ROOT, "configs", "cifar10.yaml"), "t", argv=[
        "--config", "tiny.yaml", "--pretrained_path", str(out), "--resume_ckpt_path", str(ckpt),
        "--mode", "convert", "--quiet"]) == 0
    saved, train = paddle.load(str(out)), paddle.load(str(ckpt))
    for k, v in train["model_ema"].items():
        np.testing.assert_array_equal(np.asarray(saved["model"][k]), v.numpy())
    assert saved["config"]["model"]["ch"] == 8
    assert digest(ckpt) == before
    proc = run("run_cifar10.py", "--config", "tiny.yaml", "--pretrained_path", str(ckpt),
               "--resume_ckpt_path", str(ckpt), "--mode", "convert", cwd=runs, expect=2)
    assert len(proc.stderr.strip().splitlines()) == 1 and "training checkpoint" in proc.stderr
    assert digest(ckpt) == before


def test_several_pairs_after_one_o_and_exactly_the_typed_flags(tmp_path):
    yaml_path = os.path.join(ROOT, "configs", "cifar10.yaml")
    args = parse_command_line("t", yaml_path, argv=[
        "-o", "model.ch=64", "train.lr=0.001", "sample.eta=0.5", "--stride", "10",
        "-o", "model.dropout=0.3", "--convert_ema", "true"])
    cfg = resolve_config(args, yaml_path)
    assert (cfg.model.ch, cfg.train.lr, cfg.sample.eta, cfg.model.dropout) == (64, 0.001, 0.5, 0.3)
    # Typed flags are found by parsing, even when they repeat the default or the config value.
    assert args.given == ["convert_ema", "override", "stride"]
    assert parse_command_line("t", yaml_path, argv=[]).given == []
