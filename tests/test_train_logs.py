"""What a training run writes for a person to read (issue 22, items 7, 11 and 15), through the
command line with stderr a pipe (as when redirected to a file): a plain progress line instead
of a bar, one note when warm-up outlasts the run, and a run id on every logged row, kept when
the run is resumed and different for an unrelated run in the same log folder."""
import csv

import pytest

from helpers_cli import run, tiny_cifar10_yaml
from helpers_data import make_fake_cifar10
from ppddpm.train.report import ProgressLines, duration, warmup_note

TINY = tiny_cifar10_yaml("{batchsize: 4, training_iters: 3, warmup_steps: 5000, "
                         "sample_interval: 0, ckpt_interval: 0}")


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("logs")
    make_fake_cifar10(str(d / "ds"), 8)
    (d / "tiny.yaml").write_text(TINY)
    first = run("run_cifar10.py", "--config", "tiny.yaml", "--data_dir", "ds", "--mode", "train",
                "--ckpt_dir", "ck_a", cwd=d, quiet=False)
    resumed = run("run_cifar10.py", "--config", "tiny.yaml", "--mode", "resume", "--ckpt_dir", "ck_a",
                  "--training_iters", "5", "--warmup_steps", "2", cwd=d, quiet=False)
    other = run("run_cifar10.py", "--config", "tiny.yaml", "--data_dir", "ds", "--mode", "train",
                "--ckpt_dir", "ck_b", "--training_iters", "2", "--warmup_steps", "0", cwd=d, quiet=False)
    return d, first, resumed, other


def test_redirected_training_prints_plain_progress_lines(workdir):
    _, first, resumed, _ = workdir
    assert "\r" not in first.stderr and "\x1b[" not in first.stderr
    lines = [l for l in first.stderr.splitlines() if l.startswith("train: iteration")]
    assert lines and lines[-1].startswith("train: iteration 3/3 (100%), loss ")
    assert "it/s, ETA 0s" in lines[-1]
    assert [l for l in resumed.stderr.splitlines() if l.startswith("train: iteration")][-1] \
        .startswith("train: iteration 5/5 (100%)")


def test_quiet_training_prints_no_progress_line(tmp_path):
    make_fake_cifar10(str(tmp_path / "ds"), 8)
    (tmp_path / "tiny.yaml").write_text(TINY)
    proc = run("run_cifar10.py", "--config", "tiny.yaml", "--data_dir", "ds", "--mode", "train",
               "--training_iters", "1", cwd=tmp_path)
    assert "train: iteration" not in proc.stderr


def test_warmup_longer_than_the_run_is_said_once(workdir):
    _, first, resumed, other = workdir
    notes = [l for l in first.stderr.splitlines() if "warmup_steps" in l]
    # lr 2e-4 (configs/cifar10.yaml) ramps to 2e-4 * 3/5000 = 1.2e-07 by the last of 3 updates
    assert notes == ["note: train.warmup_steps is 5000 but training_iters is 3, so the learning "
                     "rate only ramps up to 1.2e-07 (of --lr 0.0002); for a short trial lower "
                     "--warmup_steps (e.g. --warmup_steps 0)"]
    assert "warmup_steps" not in resumed.stderr and "warmup_steps" not in other.stderr


def test_every_logged_row_names_its_run_and_resume_keeps_it(workdir):
    d = workdir[0]
    table = rows(d / "log" / "scalars.csv")
    assert table[0] == ["step", "tag", "value", "run"]
    loss = [r for r in table[1:] if r[1] == "loss"]
    assert [int(r[0]) for r in loss] == [1, 2, 3, 4, 5, 1, 2]   # run a (3 + 2 resumed), run b
    a, b = {r[3] for r in loss[:5]}, {r[3] for r in loss[5:]}
    assert len(a) == 1 and len(b) == 1 and a != b
    assert a.pop().startswith("cifar10-") and b.pop().startswith("cifar10-")


def test_an_older_csv_without_run_column_is_left_alone(tmp_path):
    from ppddpm.train.logger import RunLogger
    old = tmp_path / "scalars.csv"
    old.write_text("step,tag,value\n1,loss,0.5\n")
    log = RunLogger(str(tmp_path), "r1")
    log.scalar("loss", 0.25, 1)
    log.close()
    assert old.read_text() == "step,tag,value\n1,loss,0.5\n"
    assert rows(tmp_path / "scalars_r1.csv") == [["step", "tag", "value", "run"], ["1", "loss", "0.25", "r1"]]


def test_progress_lines_come_at_the_interval_and_at_the_end():
    now = [0.0]
    printed = []

    class Sink:
        def write(self, s):
            printed.append(s)

        def flush(self):
            pass
    lines = ProgressLines(total=100, first=20, interval=30.0, stream=Sink(), clock=lambda: now[0])
    out = []
    for it in range(21, 101):
        now[0] += 1.0          # one iteration per second
        out.append(lines.update(it, 0.5))
    shown = [(i, l) for i, l in zip(range(21, 101), out) if l]
    assert [i for i, _ in shown] == [50, 80, 100]
    # 30 iterations in 30 s since the resume at 20: 1 it/s, 50 to go
    assert shown[0][1] == "train: iteration 50/100 (50%), loss 0.5, 1 it/s, ETA 50s"
    assert shown[-1][1].endswith("ETA 0s")
    assert duration(3725) == "1h02m" and duration(185) == "3m05s"


def test_warmup_note_only_when_warmup_outlasts_the_run():
    assert warmup_note(2e-4, 500, 500) is None and warmup_note(2e-4, 0, 6) is None
    assert "ramps up to 2.4e-07" in warmup_note(2e-4, 5000, 6)
    assert warmup_note(2e-4, 5000, 6, first=6) is None    # nothing left to train
