"""Output folders are created and write-tested before the first iteration (ppddpm/cli/outputs.py):
a folder that cannot be made or written is one `error:` line naming the flag, the path and
the reason, with exit status 2. Tests run as root, where permissions do not stop writes,
so unwritable folders are made with a path through a regular file, or /proc; a full disk
is simulated with RLIMIT_FSIZE = 0 in test_validation.py's subprocess batch."""
import os

import pytest

from helpers_cli import ROOT
from ppddpm.cli import main
from ppddpm.cli.outputs import OutputDirError, prepare_output_dir

from test_validation import TINY  # noqa: E402  (the same tiny CIFAR-10 config)


@pytest.fixture
def work(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY.format(root=ROOT))
    (tmp_path / "afile").write_text("not a folder")
    return tmp_path


def run_main(work, *argv):
    d = str(work)
    args = ["--ckpt_dir", f"{d}/ck", "--sample_dir", f"{d}/s", "--log_dir", f"{d}/l",
            "--data_dir", f"{d}/no_data", "--quiet", *argv]   # later flags win
    return main(str(work / "tiny.yaml"), "test", argv=args)


# (mode arguments, flag set to a bad folder, the flag's label in the message)
CASES = [
    (["--mode", "train"], "--ckpt_dir", "--ckpt_dir / train.ckpt_dir"),
    (["--mode", "train"], "--log_dir", "--log_dir / train.log_dir"),
    (["--mode", "train"], "--sample_dir", "--sample_dir / sample.sample_dir"),
    (["--mode", "denoise", "--pretrained_path", "none.pdparam"], "--sample_dir", "--sample_dir / sample.sample_dir"),
    (["--mode", "eval", "--num_samples", "4"], "--sample_dir", "--sample_dir / sample.sample_dir"),
    (["--mode", "eval", "--samples", "x.npz"], "--eval_out", "--eval_out"),
    (["--mode", "convert", "--resume_ckpt_path", "none.pdparam"], "--ckpt_dir", "--ckpt_dir / train.ckpt_dir"),
]


@pytest.mark.parametrize("mode,flag,label", CASES, ids=[f"{c[0][1]} {c[1]}" for c in CASES])
def test_folder_under_a_regular_file(work, capsys, mode, flag, label):
    bad = str(work / "afile" / "sub")
    value = os.path.join(bad, "results.json") if flag == "--eval_out" else bad
    assert run_main(work, *mode, flag, value) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {label} {bad!r}: cannot create the folder: Not a directory"
    assert (work / "afile").read_text() == "not a folder"
    for name in ("ck", "l", "s"):   # folders prepared before the bad one stay empty
        assert not (work / name).exists() or os.listdir(work / name) == []


def test_folder_that_is_a_file(work, capsys):
    assert run_main(work, "--mode", "train", "--ckpt_dir", str(work / "afile")) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --ckpt_dir / train.ckpt_dir {str(work / 'afile')!r}: cannot create the folder: File exists"


def test_existing_folder_that_cannot_be_written(work, capsys):
    """/proc is a folder nobody, root included, can create files in."""
    assert run_main(work, "--mode", "train", "--log_dir", "/proc") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --log_dir / train.log_dir '/proc': cannot write to the folder: ")
    assert len(err.splitlines()) == 1


def test_nothing_is_created_before_a_folder_fails(work, capsys):
    """ckpt_dir is fine but log_dir is not: the run stops before the first iteration, so the
    checkpoint folder stays empty."""
    assert run_main(work, "--mode", "train", "--log_dir", str(work / "afile" / "log")) == 2
    assert "--log_dir" in capsys.readouterr().err
    assert os.listdir(work / "ck") == []


def test_sample_dir_is_left_alone_when_no_grids_are_drawn(work, capsys):
    """With sample_interval 0 (and image data) nothing goes to sample_dir during training, so a
    bad sample_dir does not stop the run; here it goes on to the missing data set."""
    rc = run_main(work, "--mode", "train", "--sample_interval", "0",
                  "--sample_dir", str(work / "afile" / "s"))
    err = capsys.readouterr().err
    assert rc == 2 and "cannot create the folder" not in err and "cifar-10-python.tar.gz" in err


def test_prepare_output_dir_makes_nested_folders_and_leaves_no_probe(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    assert prepare_output_dir(str(target), "--x") == str(target)
    assert target.is_dir() and os.listdir(target) == []
    with pytest.raises(OutputDirError, match="--x '/proc/ppddpm-no-such-folder': cannot create"):
        prepare_output_dir("/proc/ppddpm-no-such-folder", "--x")


def test_empty_path_means_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert prepare_output_dir("", "--x") == "."
    assert os.listdir(tmp_path) == []


def test_eval_tests_its_folder_but_leaves_nothing_behind(work, capsys):
    """eval writes nothing before its own early checks pass: the folder is write-tested and
    removed again (here the run then stops at the missing Inception weights or data)."""
    run_main(work, "--mode", "eval", "--num_samples", "4", "--sample_dir", str(work / "e" / "f"))
    assert not (work / "e").exists()


def test_keep_false_removes_only_the_folders_it_made(tmp_path):
    (tmp_path / "old").mkdir()
    prepare_output_dir(str(tmp_path / "old" / "new" / "deeper"), "--x", keep=False)
    assert os.listdir(tmp_path) == ["old"] and os.listdir(tmp_path / "old") == []
