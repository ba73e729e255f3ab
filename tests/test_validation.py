"""Bad values are refused before the first iteration (docs/bad_inputs.md): one `error:` line
naming the flag and key, the value and the allowed range, exit status 2, no traceback, and
nothing written. Valid edge values still run."""
import glob
import os
import resource
import signal
import subprocess
import sys
from dataclasses import fields

import numpy as np
import paddle
import pytest

from helpers_cli import ROOT
from ppddpm.cli import main, resolve_config
from ppddpm.cli.args import build_parser
from ppddpm.config import Config, ConfigError, apply_overrides, load_config
from ppddpm.cli.outputs import output_folders
from ppddpm.config.checks import RANGES, check_model
from ppddpm.diffusion.schedules import SCHEDULE_USES
from ppddpm.samplers import checked_sampler
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.models import build_model
from ppddpm.diffusion.schedules import get_beta_schedule

TINY = """\
base: {root}/configs/cifar10.yaml
model: {{ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [16]}}
diffusion: {{num_diffusion_steps: 20, beta_end: 0.2}}
train: {{batchsize: 4, training_iters: 2, sample_interval: 1, ckpt_interval: 1}}
data: {{num_workers: 0, download: false}}
sample: {{num_images: 4-2-2}}
"""

BAD_FILES = {
    "model_list.yaml": "model: [1, 2]\n",
    "top_list.yaml": "- data\n- model\n",
    "int_list.yaml": "train: {batchsize: [1, 2]}\n",
    "unknown_key.yaml": "train: {lr_max: 1}\n",
    "binary.yaml": "\0\1\2",
    "nan_lr.yaml": "train: {lr: .nan}\n",
}

# (argv, words the one error line must hold). {d} is this module's work folder.
CASES = [
    (["--mode", "resume", "--lr", "nan"], ["--lr", "train.lr", "nan", "finite"]),
    (["--lr", "inf"], ["--lr", "train.lr", "inf", "finite"]),
    (["--lr", "-1"], ["--lr", "train.lr", "-1.0", "> 0"]),
    (["--lr", "0"], ["--lr", "train.lr", "0.0", "> 0"]),
    (["--mode", "denoise", "--eta", "nan"], ["--eta", "sample.eta", "nan", "finite"]),
    (["--eta", "-0.5"], ["--eta", "sample.eta", "-0.5", ">= 0"]),
    (["--grad_clip", "nan"], ["--grad_clip", "train.grad_clip", "nan", "finite"]),
    (["--grad_clip", "-1"], ["--grad_clip", "train.grad_clip", "-1.0", ">= 0"]),
    (["--warmup_steps", "-5"], ["--warmup_steps", "train.warmup_steps", "-5", ">= 0"]),
    (["--keep_last", "-1"], ["--keep_last", "train.keep_last", "-1", ">= 0"]),
    (["--sample_interval", "-1"], ["--sample_interval", "train.sample_interval", ">= 0"]),
    (["--ckpt_interval", "-2"], ["--ckpt_interval", "train.ckpt_interval", ">= 0"]),
    (["--num_workers", "-1"], ["--num_workers", "data.num_workers", "-1", ">= 0"]),
    (["--seed", "-1"], ["--seed", "train.seed", "-1", "[0, "]),
    (["--sample_seed", "-3"], ["--sample_seed", "sample.seed", "-3", "[0, "]),
    (["--ema_decay", "1"], ["--ema_decay", "train.ema_decay", "1.0", "[0, 1)"]),
    (["--batchsize", "0"], ["--batchsize", "train.batchsize", "0", ">= 1"]),
    (["--beta_start", "-1"], ["--beta_start", "diffusion.beta_start", "-1.0", "(0, 1)"]),
    (["--beta_end", "2"], ["--beta_end", "diffusion.beta_end", "2.0", "(0, 1)"]),
    (["--beta_start", "0.3"], ["--beta_start", "--beta_end", "0.3 >= 0.2", "below"]),
    (["--beta_schedule", "const", "--beta_end", "1"], ["--beta_end", "1.0", "(0, 1)", "const"]),
    (["--beta_schedule", "bogus"], ["--beta_schedule", "diffusion.beta_schedule", "'bogus'", "cosine"]),
    (["--beta_schedule", "jsd"], ["--beta_schedule", "'jsd'", "(0, 1)"]),
    (["--beta_end", "0.999", "--num_diffusion_steps", "1000"], ["--beta_end", "0.999", "alpha-bar_T"]),
    (["-o", "model.dropout=2"], ["model.dropout", "2.0", "[0, 1)"]),
    (["-o", "model.dropout=nan"], ["model.dropout", "nan", "finite"]),
    (["-o", "model.ch=0"], ["model.ch", "0", ">= 1"]),
    (["-o", "model.ch=1.5"], ["model.ch=1.5", "integer"]),
    (["-o", "model.ch=true"], ["model.ch=True", "integer"]),
    (["-o", "model.ch=48"], ["model.ch", "48", "multiple of model.norm_groups=32"]),
    (["-o", "model.resolution=0"], ["model.resolution", "0", ">= 1"]),
    (["-o", "model.resolution=33"], ["model.resolution", "33", "divisible by 2"]),
    (["-o", "model.ch_mult=[1,0]"], ["model.ch_mult", "[1, 0]", "positive"]),
    (["-o", "model.ch_mult=[1,1.5]"], ["model.ch_mult", "integers"]),
    (["-o", "model.attn_resolutions=[12]"], ["model.attn_resolutions", "[12]", "[16, 32]"]),
    (["-o", "model.norm_eps=0"], ["model.norm_eps", "0.0", "> 0"]),
    (["-o", "model.num_classes=0"], ["model.num_classes", "0", ">= 1"]),
    (["--respacing", "abc"], ["--respacing", "sample.respacing", "'abc'", "ddimN"]),
    (["--mode", "denoise", "--respacing", "ddim0"], ["--respacing", "'ddim0'", "positive"]),
    (["--sampler", "ddim", "--stride", "0"], ["--stride", "sample.stride", "0", ">= 1"]),
    (["--sampler", "ddim", "--ddim_steps", "0"], ["--ddim_steps", "sample.num_steps", ">= 1"]),
    (["--num_images", "64-8"], ["--num_images", "sample.num_images", "'64-8'", "N-R-C"]),
    (["--num_images", "10-3-3"], ["--num_images", "10-3-3", "R*C"]),
    # settings only the sampler itself can judge (T = 20 here): built before training starts
    (["--sampler", "ddim", "--stride", "50"], ["--sampler", "--stride", "sample.stride=50", "[1, 20]"]),
    (["--respacing", "30"], ["--respacing", "sample.respacing='30'", "cannot take 30"]),
    # config files
    (["--config", "{d}/model_list.yaml"], ["model_list.yaml", "'model'", "mapping"]),
    (["--config", "{d}/top_list.yaml"], ["top_list.yaml", "sections"]),
    (["--config", "{d}/int_list.yaml"], ["train.batchsize=[1, 2]", "integer"]),
    (["--config", "{d}/unknown_key.yaml"], ["train.lr_max", "unknown"]),
    (["--config", "{d}/nan_lr.yaml"], ["--lr / train.lr must be a finite number, got nan"]),
    (["--config", "{d}/binary.yaml"], ["binary.yaml", "not valid YAML"]),
    (["--config", "{d}"], ["cannot be read", "Is a directory"]),
    (["--config", "/proc/self/mem"], ["/proc/self/mem", "cannot be read"]),
    (["--config", "{d}/missing.yaml"], ["missing.yaml", "does not exist"]),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("validation")
    (d / "tiny.yaml").write_text(TINY.format(root=ROOT))
    for name, text in BAD_FILES.items():
        (d / name).write_text(text)
    return d


def run_main(work, argv, config="tiny.yaml"):
    """main() in this process with the outputs under work/out; returns the return code."""
    out = work / "out"
    paths = ["--ckpt_dir", str(out / "ckpts"), "--sample_dir", str(out / "sample"),
             "--log_dir", str(out / "log"), "--data_dir", str(work / "no_data")]
    return main(str(work / config), "test", argv=[*argv, *paths, "--quiet"])


@pytest.mark.parametrize("argv,words", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_value_is_one_line_exit_2_and_nothing_written(work, capsys, argv, words):
    argv = [a.format(d=work) for a in argv]
    rc = run_main(work, argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err, (word, err)
    assert not (work / "out").exists()


def test_every_numeric_key_has_a_range():
    """A new int/float setting needs a row in config_checks.RANGES (or a rule of its own)."""
    own_rules = {"model.num_steps", "model.time_freq_shift", "diffusion.beta_start",
                 "diffusion.beta_end", "model.num_head_channels", "model.num_heads_upsample"}
    cfg = Config()
    for section in fields(cfg):
        for f in fields(getattr(cfg, section.name)):
            key = f"{section.name}.{f.name}"
            if f.type in ("int", "float", "Optional[int]", "Optional[float]"):
                assert key in RANGES or key in own_rules, key
    assert all(k.split(".")[1] in {f.name for f in fields(getattr(cfg, k.split(".")[0]))}
               for k in RANGES)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))))
def test_shipped_configs_pass_every_check(path):
    cfg = load_config(path)
    sampler = checked_sampler(GaussianDiffusion.from_config(cfg.diffusion), cfg.sample)
    assert sampler.num_steps >= 1
    assert [label for label, _ in output_folders(cfg, "train", True)] == [
        "--ckpt_dir / train.ckpt_dir", "--log_dir / train.log_dir", "--sample_dir / sample.sample_dir"]


@pytest.mark.parametrize("override", [
    "train.lr=1e-8", "train.grad_clip=0", "model.dropout=0", "train.warmup_steps=0",
    "train.keep_last=0", "train.ema_decay=0", "sample.eta=0", "train.seed=0",
    "model.ch_mult=[1,2,2,2,2,2]",                 # 32 = 2^5: six levels fit
    "model.attn_resolutions=[1,32]",               # the first and last levels of ch_mult 1,2,2,2,2,2
    "sample.respacing=ddim50", "sample.respacing=10,15,20", "diffusion.beta_schedule=cosine",
])
def test_valid_edge_values_pass(override):
    extra = ["model.ch_mult=[1,2,2,2,2,2]"] if "attn" in override else []
    cfg = apply_overrides(load_config(os.path.join(ROOT, "configs", "cifar10.yaml")), extra + [override])
    checked_sampler(GaussianDiffusion.from_config(cfg.diffusion), cfg.sample)


def test_overrides_and_flags_are_checked_together(work):
    """-o values are checked with the flags that follow them, not on their own."""
    argv = ["-o", "diffusion.beta_start=0.3", "--beta_end", "0.5",
            "-o", "model.learn_sigma=true", "--var_type", "learned_range"]
    cfg = resolve_config(build_parser("test").parse_args(argv), str(work / "tiny.yaml"))
    assert (cfg.diffusion.beta_start, cfg.diffusion.beta_end, cfg.model.learn_sigma) == (0.3, 0.5, True)


def test_valid_edge_values_train_and_sample(tmp_path, capsys):
    """lr 1e-8, grad_clip 0, dropout 0, no warm-up, beta_end 0.999 (over 10 steps) and
    keep_last 0 run end to end on the toy set."""
    argv = ["--ckpt_dir", str(tmp_path / "ck"), "--sample_dir", str(tmp_path / "s"),
            "--log_dir", str(tmp_path / "l"), "--quiet", "--training_iters", "2", "--lr", "1e-8",
            "--grad_clip", "0", "--warmup_steps", "0", "--beta_end", "0.999",
            "--num_diffusion_steps", "10", "-o", "model.dropout=0", "--keep_last", "0",
            "--num_images", "4-2-2", "--batchsize", "16"]
    assert main(os.path.join(ROOT, "configs", "toy.yaml"), "test", argv=argv) == 0, capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "ck")) == ["ddpm_toy_i2.pdparam", "ddpm_toy_i2_ema.pdparam",
                                                  "toy_ckpt_iter_2.pdparam"]
    assert os.path.isfile(tmp_path / "s" / "sample_iter2.png")


# The architecture rules against the networks themselves: check_model accepts a shape
# exactly when the network builds and runs at that resolution.
ARCH_CASES = [
    ("unet", dict(resolution=8, ch_mult=[1, 2])), ("unet", dict(resolution=6, ch_mult=[1, 2, 2])),
    ("unet", dict(resolution=4, ch_mult=[1, 2, 2])), ("unet", dict(num_res_blocks=0)),
    ("unet", dict(ch=8, ch_mult=[2, 4], norm_groups=16)), ("unet", dict(ch=16, ch_mult=[2, 4], norm_groups=16)),
    ("unet", dict(ch=4, norm_groups=2, time_freq_shift=2.0)), ("unet", dict(ch=6, norm_groups=2, time_freq_shift=2.0)),
    ("fpn", dict(resolution=6, ch_mult=[1, 2, 2])), ("fpn", dict(resolution=8, ch_mult=[1, 2, 2])),
    ("fpn", dict(ch=8, ch_mult=[4], norm_groups=32)),
    ("legacy_unet", dict(resolution=6, ch_mult=[1, 2, 2])), ("legacy_unet", dict(resolution=8)),
    ("legacy_unet", dict(ch=48)), ("legacy_fpn", dict(resolution=2, ch_mult=[1, 2, 2])),
    ("legacy_fpn", dict(resolution=4, ch_mult=[1, 2, 2])),
    ("mlp", dict(ch=2, resolution=1, in_channels=2, out_channels=2)),
    ("mlp", dict(ch=4, resolution=1, in_channels=2, out_channels=2)),
]


@pytest.mark.parametrize("arch,kw", ARCH_CASES, ids=[f"{a}-{kw}" for a, kw in ARCH_CASES])
def test_model_rules_match_what_the_networks_can_build(arch, kw):
    m = Config().model
    m.arch, m.ch, m.ch_mult, m.resolution, m.attn_resolutions, m.num_steps = arch, 32, [1, 2], 8, [], 10
    m.norm_groups, m.num_res_blocks = 8, 1
    for k, v in kw.items():
        setattr(m, k, v)
    try:
        check_model(m)
        accepted = True
    except ConfigError:
        accepted = False
    try:
        net = build_model(m)
        net.eval()
        x = paddle.randn([1, m.in_channels, m.resolution, m.resolution])
        builds = list(net(x, paddle.to_tensor([3])).shape) == [1, m.out_channels, m.resolution, m.resolution]
    except Exception:
        builds = False
    assert accepted == builds


def test_attention_goes_at_every_listed_reachable_resolution():
    m = Config().model
    m.ch, m.ch_mult, m.resolution, m.num_res_blocks, m.norm_groups = 8, [1, 1, 1], 8, 1, 8
    m.attn_resolutions = [8, 2]
    check_model(m)
    net = build_model(m)
    # down: one block per level, up: two; attention after each block at 8 and at 2 (+ the middle)
    assert sum(type(layer).__name__ == "AttnBlock" for layer in net.sublayers()) == (1 + 2) * 2 + 1


# A handful through real run scripts: no traceback reaches the user. They run side by side.
SUBPROCESS_CASES = [
    ("run_cifar10.py", ["--mode", "resume", "--lr", "nan"], "--lr / train.lr must be a finite number, got nan"),
    ("run_toy.py", ["--respacing", "abc"], "--respacing / sample.respacing must be"),
    ("run_celeba_hq.py", ["-o", "model.ch=1.5"], "model.ch=1.5 is not an integer"),
    # a full disk: no file may grow past 0 bytes (RLIMIT_FSIZE; SIGXFSZ ignored, so write fails)
    ("run_cifar10.py", ["--config", "tiny.yaml", "--ckpt_dir", "full"],
     "error: --ckpt_dir / train.ckpt_dir 'full': cannot write to the folder: File too large"),
]


def _no_file_may_grow():
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.fixture(scope="module")
def script_runs(work):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, script), *args, "--quiet"],
                              cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, preexec_fn=_no_file_may_grow if "full" in args else None)
             for script, args, _ in SUBPROCESS_CASES]
    return [(p.wait(timeout=300), p.stderr.read()) for p in procs]


@pytest.mark.parametrize("i", range(len(SUBPROCESS_CASES)),
                         ids=[c[0] + " " + " ".join(c[1]) for c in SUBPROCESS_CASES])
def test_run_scripts_print_one_line_without_traceback(script_runs, work, i):
    rc, err = script_runs[i]
    assert rc == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert SUBPROCESS_CASES[i][2] in err
    assert not os.path.exists(work / "ckpts") and not os.path.exists(work / "toy_out")
    assert not os.path.exists(work / "full") or os.listdir(work / "full") == []


@pytest.mark.parametrize("name", sorted(SCHEDULE_USES))
def test_schedule_uses_table_matches_the_schedules(name):
    """A beta is checked exactly when the schedule reads it: changing it changes the betas."""
    base = get_beta_schedule(name, 100, 0.001, 0.02)
    moved = {"beta_start": get_beta_schedule(name, 100, 0.002, 0.02),
             "beta_end": get_beta_schedule(name, 100, 0.001, 0.03)}
    assert {k for k, b in moved.items() if not np.array_equal(b, base)} == set(SCHEDULE_USES[name])
