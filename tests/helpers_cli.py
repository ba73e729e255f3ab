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


def tiny_cifar10_yaml(train: str, sample: str = "{num_images: 4-2-2}") -> str:
    """A YAML config: configs/cifar10.yaml with a 2-level 32-channel UNet, 20 steps (ending in
    noise), no loader workers, and the given ``train`` (and ``sample``) mappings in flow style."""
    return (f"base: {ROOT}/configs/cifar10.yaml\n"
            "model: {ch: 32, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [16], dropout: 0.1}\n"
            "diffusion: {num_diffusion_steps: 20, beta_end: 0.5}\n"  # alpha-bar_T 2e-3: x_T is noise
            f"train: {train}\n"
            "data: {num_workers: 0}\n" + (f"sample: {sample}\n" if sample else ""))


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
