"""``python -m ppddpm.web``'s command-line mistakes: one line naming the bad value and the
fix, exit status 2, no traceback. One command runs as a user types it (the real entry and
its exit status); the other mistakes go through the same ``main`` in-process."""
import os
import socket
import subprocess
import sys
import types

import pytest

from ppddpm.web import command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_command_exits_2_with_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "ppddpm.web", "--models", str(tmp_path / "nope")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"error: --models {str(tmp_path / 'nope')!r} does not exist; give the "
                           "folder that holds your weights files (.pdparam, .pdparams, "
                           ".safetensors)\n")
    assert not (tmp_path / "web_samples").exists()


@pytest.fixture
def busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


def test_each_mistake_is_one_line_and_exit_2(tmp_path, busy_port, monkeypatch, capsys):
    models = tmp_path / "models"
    models.mkdir()
    (tmp_path / "a_file").write_text("x")
    out = ["--out", str(tmp_path / "out")]
    cases = [
        (["--models", str(tmp_path / "a_file")] + out, "is a file; give the folder"),
        (["--models", str(models), "--out", str(tmp_path / "a_file" / "x")],
         f"--out {str(tmp_path / 'a_file' / 'x')!r} cannot be written (Not a directory)"),
        (["--models", str(models), "--port", "70000"] + out,
         "--port '70000' must be a whole number 0..65535"),
        (["--models", str(models), "--port", "http"] + out, "--port 'http' must be a whole"),
        (["--models", str(models), "--port", str(busy_port)] + out,
         f"--port {busy_port} is in use (another server?); choose another"),
    ]
    for argv, message in cases:
        assert command.main(argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1, captured
        assert captured.err.startswith("error: ") and message in captured.err, captured.err
    for name in command.EXTRA_MODULES:   # the web extra not installed
        monkeypatch.setitem(sys.modules, name, None)
    assert command.main(["--models", str(models)] + out) == 2
    assert capsys.readouterr().err == ('error: the web page needs the web extra (starlette, '
                                       'uvicorn not installed): pip install -e ".[web]"\n')


def test_this_machine_only_unless_asked_and_then_a_warning(tmp_path, monkeypatch, capsys):
    """(The server itself stands aside: this needs no web extra.)"""
    served = []
    server = types.SimpleNamespace(serve=lambda sock, *rest: served.append(sock.getsockname()))
    monkeypatch.setitem(sys.modules, "ppddpm.web.server", server)
    monkeypatch.setattr(command, "check_extra", lambda: None)
    models = tmp_path / "models"
    models.mkdir()
    base = ["--models", str(models), "--out", str(tmp_path / "out"), "--port", "0"]
    assert command.main(base) == 0
    captured = capsys.readouterr()
    assert served[-1][0] == "127.0.0.1" and captured.err == ""
    assert f"open http://127.0.0.1:{served[-1][1]}/  (Ctrl-C stops it)" in captured.out
    assert command.main(base + ["--host", "0.0.0.0", "--token", "s3cret"]) == 0
    captured = capsys.readouterr()
    assert served[-1][0] == "0.0.0.0"
    assert captured.err.startswith("warning: --host 0.0.0.0 lets every machine")
    assert f":{served[-1][1]}/?token=s3cret" in captured.out
