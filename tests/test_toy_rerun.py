"""The toy demo's runs keep apart and a rerun continues (issue 22, items 7 and 10): each data
set and config has its own folder, and a plain rerun of run_toy.py continues its run instead
of refusing it. Through the command line, with a tiny model and 2 iterations."""
import argparse
import glob
import os
import re

import pytest

from helpers_cli import ROOT, run
from ppddpm.cli.resolve import resolve_config

TINY = ["-o", "model.ch=8", "--num_images", "16-4-4", "--respacing", "10"]


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder``."""
    out = {}
    for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True):
        if os.path.isfile(path) and not path.endswith(".lock"):
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = fh.read()
    return out


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    d = tmp_path_factory.mktemp("rerun")
    run("run_toy.py", *TINY, "--training_iters", "2", cwd=d)
    return d


def test_another_data_set_trains_in_its_own_folder(first):
    before = snapshot(first / "toy_out" / "gaussian25")
    assert {"ckpts/toy_ckpt_iter_2.pdparam", "sample/sample_iter2.png", "sample/sample_iter2.gif",
            "sample/sample_iter2.json"} <= set(before)
    proc = run("run_toy.py", *TINY, "--training_iters", "2", "-o", "data.dataset=scurve", cwd=first,
               quiet=False)
    assert "toy_out/scurve/sample/sample_iter2.png" in proc.stdout
    assert os.path.isfile(first / "toy_out" / "scurve" / "ckpts" / "toy_ckpt_iter_2.pdparam")
    assert snapshot(first / "toy_out" / "gaussian25") == before      # nothing of it rewritten


def test_a_plain_rerun_of_a_finished_run_shows_it_and_changes_nothing(first):
    folder = first / "toy_out" / "gaussian25"
    before = snapshot(folder)
    proc = run("run_toy.py", *TINY, "--training_iters", "2", cwd=first, quiet=False)
    lines = proc.stdout.splitlines()
    assert lines[0] == ("./toy_out/gaussian25/ckpts already holds a run of this config "
                        "(iteration 2 of 2): continuing it; --overwrite True starts again")
    assert "already finished" in lines[1] and "raise --training_iters to go on" in lines[1]
    assert lines[2].startswith("its samples: ./toy_out/gaussian25/sample/sample_iter2.png")
    assert re.match(r"gaussian25: \d+/25 modes", lines[3])
    assert snapshot(folder) == before


def test_a_rerun_with_more_iterations_continues_the_run(first):
    proc = run("run_toy.py", *TINY, "--training_iters", "3", cwd=first, quiet=False)
    assert "continuing it" in proc.stdout and "resuming ./toy_out/gaussian25/ckpts/toy_ckpt_iter_2" \
        in proc.stdout
    assert os.path.isfile(first / "toy_out" / "gaussian25" / "sample" / "sample_iter3.json")


def test_a_rerun_with_another_model_names_the_ways_out(first):
    proc = run("run_toy.py", *TINY[2:], "-o", "model.ch=16", "--training_iters", "3", cwd=first,
               expect=2)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "model.ch: file has 8, expected 16" in err
    assert "start it again with --overwrite True, or give this one its own --ckpt_dir" in err


def test_mode_train_keeps_refusing_a_folder_with_checkpoints(first):
    """Typing --mode train says what it means: no silent continue."""
    proc = run("run_toy.py", *TINY, "--mode", "train", "--training_iters", "3", cwd=first, expect=2)
    assert "already holds" in proc.stderr and "--overwrite" in proc.stderr


def test_no_two_toy_configs_share_a_folder():
    """configs/toy*.yaml, each on its own data set and on gaussian8: distinct output folders."""
    seen = {}
    for config in sorted(glob.glob(os.path.join(ROOT, "configs", "toy*.yaml"))):
        for extra in ([], ["data.dataset=gaussian8"]):
            args = argparse.Namespace(config=config, override=extra, given=[])
            cfg = resolve_config(args, config)
            folders = (cfg.train.ckpt_dir, cfg.train.log_dir, cfg.sample.sample_dir)
            assert cfg.data.dataset in folders[0]
            for folder in folders:
                where = (os.path.basename(config), cfg.data.dataset)
                assert seen.setdefault(os.path.normpath(folder), where) == where, folder
    assert len(seen) == 3 * 7   # 4 configs x 2 data sets; toy_cond is on gaussian8 already
