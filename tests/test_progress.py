"""Progress displays (ppddpm/runtime/progress.py): a tqdm bar on a terminal, plain lines at a
steady interval in a log, nothing when quiet; and through the command line, with stderr a
pipe as in a redirected log: sampling, --mode eval and --metrics bpd write no carriage return
or escape code, and do write plain progress lines. ppddpm's own warnings are one line."""
import io
import os
import re
import subprocess
import sys

import paddle
import pytest
from tqdm import tqdm

from helpers_cli import ROOT
from helpers_data import make_fake_cifar10, make_fake_image_tree
from ppddpm.config import load_config
from ppddpm.convert.pretrained import save_inference_file
from ppddpm.diffusion import GaussianDiffusion
from ppddpm.models import build_model
from ppddpm.runtime import progress as progress_module
from ppddpm.runtime.progress import PlainProgress, duration, progress, warning_line

PLAIN = re.compile(r"^(\S[^:]*): (\d+)(?:/(\d+))? (\w+)")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_tqdm_bar_a_log_plain_lines_and_quiet_nothing():
    bar = progress(range(3), desc="x", stream=Terminal())
    assert isinstance(bar, tqdm)
    bar.close()
    log = io.StringIO()
    assert isinstance(progress(range(3), desc="x", stream=log), PlainProgress)
    quiet = progress(range(3), desc="x", stream=log, enabled=False)
    assert list(quiet) == [0, 1, 2] and log.getvalue() == ""


def test_plain_lines_count_and_end_with_the_total(monkeypatch):
    monkeypatch.setattr(progress_module, "_last_plain_line", [0.0])
    log = io.StringIO()
    assert list(progress(range(5), desc="DDPMSampler", unit="step", stream=log, interval=0)) \
        == list(range(5))
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()
    assert lines[0].startswith("DDPMSampler: 1/5 step (20%), ") and "left" in lines[0]
    assert lines[4].startswith("DDPMSampler: 5/5 step (100%)") and "left" not in lines[4]
    assert re.fullmatch(r"DDPMSampler: 5/5 step in \d+s", lines[5])
    assert len(lines) == 6


def test_plain_lines_keep_a_steady_interval_and_show_nested_displays_on_one_line(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(progress_module, "_last_plain_line", [0.0])
    log = io.StringIO()
    outer = progress(total=4, desc="images", unit="img", stream=log, interval=10)
    for _ in range(4):
        inner = progress(range(100), desc="steps", unit="step", stream=log, interval=10,
                         leave=False)
        for _ in inner:
            now[0] += 0.25            # 25 s per batch of 100 steps: 100 s in all
        outer.update(1)
    outer.close()
    lines = log.getvalue().splitlines()
    # a line 10 s after a display starts and every 10 s after the last line; the inner display
    # (leave=False) leaves no last line of its own
    assert len(lines) == 9 and all(" | steps: " in l for l in lines[:8]), lines
    assert lines[0] == "images: 0/4 img (0%), 0 img/s | steps: 40/100 step (40%), 4 step/s, 15s left"
    assert lines[4] == "images: 2/4 img (50%), 30s/img, 1m 00s left | steps: 40/100 step (40%), " \
                       "4 step/s, 15s left"
    assert lines[-1] == "images: 4/4 img in 1m 40s"


def test_a_short_wait_prints_nothing_in_a_log(monkeypatch):
    monkeypatch.setattr(progress_module, "_last_plain_line", [0.0])   # no line for long
    log = io.StringIO()
    list(progress(range(50), desc="quick", stream=log, interval=60))
    assert log.getvalue() == ""


def test_durations_read_as_a_person_writes_them():
    assert [duration(s) for s in (0.4, 59, 61, 3599, 3600, 7380)] == \
        ["0s", "59s", "1m 01s", "59m 59s", "1h 00m", "2h 03m"]


def test_ppddpm_warnings_are_one_line_others_keep_their_source():
    own = os.path.join(ROOT, "ppddpm", "data", "folders.py")
    assert warning_line("skipped 1 unreadable image file(s)", UserWarning, own, 170) == \
        "warning: skipped 1 unreadable image file(s)"
    other = warning_line("old API", DeprecationWarning, "/usr/lib/python3/x.py", 3)
    assert other.startswith("/usr/lib/python3/x.py:3: DeprecationWarning: old API")


def test_library_samplers_write_no_bar_to_a_pipe():
    """A sampler used from Python with its default progress=True, stderr a pipe."""
    code = ("import paddle\n"
            "from ppddpm import get_beta_schedule, GaussianDiffusion, DDPMSampler\n"
            "d = GaussianDiffusion(get_beta_schedule('linear', 50, 1e-4, 0.2))\n"
            "DDPMSampler(d).sample(lambda x, t: paddle.zeros_like(x), [2, 1, 2, 2])\n")
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", PPDDPM_PROGRESS_SECONDS="0")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    assert "DDPMSampler: 50/50 step (100%)" in proc.stderr


# -- through the command line ---------------------------------------------------------------
TINY = """\
base: {root}/configs/cifar10.yaml
model: {{ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [16], dropout: 0.0}}
diffusion: {{num_diffusion_steps: 10, beta_end: 0.7}}
data: {{num_workers: 0, download: false}}
sample: {{batchsize: 4}}
"""


def run_logged(args, cwd, expect=0):
    """A run script with stderr to a pipe (not a terminal) and a plain line at every update."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, PPDDPM_PROGRESS_SECONDS="0",
               PPDDPM_ENGINE_CACHE=os.path.join(str(cwd), "engines"))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "run_cifar10.py"), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == expect, proc.stdout + proc.stderr
    return proc


def no_terminal_codes(text):
    return "\r" not in text and "\x1b" not in text


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("logged")
    make_fake_cifar10(str(d / "ds"), 1)                    # 5 training images, 1 test image
    (d / "tiny.yaml").write_text(TINY.format(root=ROOT))
    cfg = load_config(str(d / "tiny.yaml"))
    paddle.seed(0)
    model = build_model(cfg.model)
    save_inference_file(str(d / "tiny_ema.pdparams"), model.state_dict(),
                        GaussianDiffusion.from_config(cfg.diffusion).betas, {}, cfg)
    return d


# --mode eval with a stand-in for the 95 MB FID Inception (features: the 3 channel means, so
# that FID's square root of a 2048x2048 matrix does not take a minute either); everything else
# is the run script's own code, with stderr a pipe.
EVAL_WITH_STUB_INCEPTION = """
import sys, paddle
import ppddpm.evaluate.run as run
class Features:
    preprocess = staticmethod(lambda x: x)
    pool3 = staticmethod(lambda x: x.mean(axis=[2, 3]))
    logits_unbiased = staticmethod(lambda f: f)
run._inception = lambda opts: (Features(), "0" * 64, opts.inception_weights, None)
from ppddpm.cli import main
sys.exit(main(sys.argv[1], "eval", argv=sys.argv[2:]))
"""


def test_eval_in_a_log_prints_plain_lines(tiny):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, PPDDPM_PROGRESS_SECONDS="0")
    proc = subprocess.run(
        [sys.executable, "-c", EVAL_WITH_STUB_INCEPTION, os.path.join(ROOT, "configs", "cifar10.yaml"),
         "--config", "tiny.yaml", "--mode", "eval", "--pretrained_path", "tiny_ema.pdparams",
         "--num_samples", "4", "--data_dir", "ds", "--inception_weights", "tiny.yaml",
         "--engine", "dygraph", "--sample_dir", "s"], cwd=tiny, env=env, capture_output=True,
        text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert no_terminal_codes(proc.stderr), proc.stderr
    for line in ("eval samples: 4/4 img (100%)", "reference: 5/5 img (100%)",
                 "inception: 4/4 img (100%)"):
        assert re.search("^" + re.escape(line), proc.stderr, re.M), proc.stderr
    assert "FID" in proc.stdout


def test_bpd_in_a_log_prints_plain_lines(tiny):
    proc = run_logged(["--config", "tiny.yaml", "--mode", "eval", "--metrics", "bpd",
                       "--pretrained_path", "tiny_ema.pdparams", "--data_dir", "ds",
                       "--engine", "dygraph", "--sample_dir", "s"], tiny)
    assert no_terminal_codes(proc.stderr), proc.stderr
    assert re.search(r"^bits/dim: 1/1 img \(100%\)", proc.stderr, re.M), proc.stderr


def test_denoise_in_a_log_prints_plain_lines_and_quiet_none(tiny):
    args = ["--config", "tiny.yaml", "--mode", "denoise", "--pretrained_path", "tiny_ema.pdparams",
            "--num_images", "4-2-2", "--engine", "dygraph", "--sample_dir", "s"]
    proc = run_logged(args, tiny)
    assert no_terminal_codes(proc.stderr), proc.stderr
    assert "DDPMSampler: 10/10 step (100%)" in proc.stderr and "images: 4/4 img" in proc.stderr
    quiet = run_logged(args + ["--quiet", "True"], tiny)
    assert quiet.stderr == "", quiet.stderr


def test_an_unreadable_image_is_one_plain_warning_line(tmp_path):
    make_fake_image_tree(str(tmp_path / "imgs"))             # one of its 8 files is not an image
    (tmp_path / "tiny.yaml").write_text(TINY.format(root=ROOT))
    proc = run_logged(["--config", "tiny.yaml", "-o", "data.dataset=folder", "--data_dir", "imgs",
                       "--training_iters", "1", "--batchsize", "2", "--sample_interval", "0",
                       "--quiet", "True"], tmp_path)
    lines = [l for l in proc.stderr.splitlines() if "unreadable" in l]
    assert len(lines) == 1, proc.stderr
    assert re.fullmatch(r"warning: skipped 1 unreadable image file\(s\) of \d+ under \S+ "
                        r"\(first: train/female/002\.jpg\)", lines[0]), lines[0]
    assert "UserWarning" not in proc.stderr and "warnings.warn" not in proc.stderr
