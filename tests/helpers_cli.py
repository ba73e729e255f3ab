"""Running the run scripts as a user would: a subprocess per command."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, cwd, expect=0, quiet=True):
    """Run ``script`` with ``args`` in ``cwd``; assert its exit status; return the process."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    cmd = [sys.executable, os.path.join(ROOT, script), *args] + (["--quiet"] if quiet else [])
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == expect, proc.stdout + proc.stderr
    return proc


def grid_size(n_rows, n_cols, tile=32, pad=2):
    """(width, height) of a grid with 2-pixel white borders around every tile."""
    return n_cols * tile + (n_cols + 1) * pad, n_rows * tile + (n_rows + 1) * pad


def in_process_cli(tmp_path, capsys, monkeypatch, config_text):
    """``call(*argv) -> (status, stderr)``: ppddpm.cli.main on ``config_text`` (written to
    tmp_path/tiny.yaml), run in-process from tmp_path with --quiet."""
    from ppddpm.cli import main
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(config_text)

    def call(*argv):
        status = main(str(tmp_path / "tiny.yaml"), "test", argv=list(argv) + ["--quiet"])
        return status, capsys.readouterr().err
    return call
