"""Every command of the README's examples, run in order in a scratch folder, as a user would
type them (issue 22, "what must be shown"; it keeps item 10, toy steps that fail when run in
order, from coming back).

The README is parsed when the test runs, so commands added or changed later are checked too.
Commands run as subprocesses with tiny settings where they train or sample (TINY below:
iteration counts and the iteration numbers in file names divided by 1000, a width-8 network,
16 points, 10 DDPM steps); ``...`` as a path means the one of the command before, as the
README uses it. A command that needs a download or weights that cannot be made here is
skipped only when it matches SKIPPED, which says why; every entry there must still match a
README command, and every command is either run or skipped by an entry."""
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHELL_LANGS = ("bash", "sh", "shell", "console")

# (pattern of a command, why it is not run here)
SKIPPED = [
    (r"^pip install ", "installs the package: .ci/run does it"),
    (r"^python -m pytest", "the test suite itself: .ci/run runs it"),
    (r"^wget ", "downloads the 95 MB FID Inception weights"),
    (r"^export PPDDPM_INCEPTION_WEIGHTS=", "points at the downloaded Inception weights"),
    (r"run_cifar10(_ddim)?\.py", "needs the CIFAR-10 download (170 MB) or CIFAR-10 weights"),
    (r"run_(fashion_)?mnist\.py", "needs the MNIST / Fashion-MNIST download or its weights"),
    (r"run_celeba(_hq|_hq_ddim|64)\.py", "needs CelebA / CelebA-HQ images (no scripted download)"),
    (r"-m paddle\.distributed\.launch", "several GPUs or processes, and the CIFAR-10 download"),
    (r"-m ppddpm\.convert ", "needs a diffusers download or CIFAR-10 weights to convert"),
    (r"run_imagenet64\.py", "needs ImageNet-64 images or converted guided-diffusion weights"),
]
RUNNABLE = re.compile(r"^python run_toy\.py\b")
TOY_POINTS = "16-8-2"       # 8 rows: one per class of the 8-mode conditional toy


def fenced_blocks(text):
    """[(language, body, first line number)] of the README's fenced code blocks."""
    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        out.append((m.group(1), m.group(2), text.count("\n", 0, m.start()) + 2))
    return out


def shell_commands(text):
    """[(line number, command)] of the shell blocks, in order: continuation lines joined,
    comments and blank lines left out, words separated by one space."""
    out = []
    for lang, body, first in fenced_blocks(text):
        if lang not in SHELL_LANGS:
            continue
        pending, start = "", None
        for k, line in enumerate(body.splitlines()):
            if start is None:
                start = first + k
            pending += line.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            words = shlex.split(pending, comments=True)
            if words:
                out.append((start, " ".join(words)))
            pending, start = "", None
    return out


def skip_reason(command):
    return next((why for pattern, why in SKIPPED if re.search(pattern, command)), None)


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        return fh.read()


def flag_value(words, flag):
    return words[words.index(flag) + 1] if flag in words else None


def set_flag(words, flag, value):
    if flag in words:
        words[words.index(flag) + 1] = value
    else:
        words += [flag, value]


def tiny(words, previous_weights):
    """The README's toy command with tiny settings (see the module docstring)."""
    words = [re.sub(r"_i(\d+)(_ema)?\.pdparam", lambda m: f"_i{int(m.group(1)) // 1000}"
                    f"{m.group(2) or ''}.pdparam", w) for w in words]
    for i, w in enumerate(words):       # '...' after --pretrained_path: the path used before
        if w in ("...", "…") and i and words[i - 1] == "--pretrained_path":
            words[i] = previous_weights
    mode = flag_value(words, "--mode") or "train"
    if mode in ("train", "resume"):
        iters = flag_value(words, "--training_iters")
        set_flag(words, "--training_iters", str(max(1, int(iters) // 1000)) if iters else "2")
        words += ["-o", "model.ch=8"]
    set_flag(words, "--num_images", TOY_POINTS)
    if not any(f in words for f in ("--sampler", "--respacing", "--steps", "--ddim_steps")):
        words += ["--respacing", "10"]
    return words


def test_every_command_is_run_or_skipped_for_a_stated_reason():
    commands = [c for _, c in shell_commands(readme())]
    assert len(commands) > 20
    unclassified = [c for c in commands if not RUNNABLE.search(c) and skip_reason(c) is None]
    assert not unclassified, f"README commands neither run nor in SKIPPED: {unclassified}"
    unused = [p for p, _ in SKIPPED if not any(re.search(p, c) for c in commands)]
    assert not unused, f"SKIPPED entries that match no README command: {unused}"


def test_the_toy_steps_include_another_data_set_and_a_rerun():
    """Item 10: after the first run, a second data set and a plain rerun (both exited 2)."""
    toy = [c for _, c in shell_commands(readme()) if RUNNABLE.search(c)]
    assert toy[0] == "python run_toy.py"
    assert any(re.search(r"-o data\.dataset=\w+$", c) for c in toy[1:])
    assert "python run_toy.py" in toy[1:]


@pytest.fixture
def scratch(tmp_path):
    """A folder with the run scripts and configs/ where the README's relative paths work."""
    os.symlink(os.path.join(ROOT, "configs"), tmp_path / "configs")
    for name in os.listdir(ROOT):
        if name.startswith("run_") and name.endswith(".py"):
            os.symlink(os.path.join(ROOT, name), tmp_path / name)
    return tmp_path


def test_readme_commands_run_in_order(scratch):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1",
               PPDDPM_ENGINE_CACHE=str(scratch / "engines"))
    weights, ran = None, []
    for line, command in shell_commands(readme()):
        if not RUNNABLE.search(command):
            continue
        words = tiny(command.split()[1:], weights)   # (toy commands have no quoted words)
        weights = flag_value(words, "--pretrained_path") or weights
        proc = subprocess.run([sys.executable, *words], cwd=scratch, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (f"README.md line {line}: {command}\n  ran: "
                                      f"{' '.join(words)}\n{proc.stdout}{proc.stderr}")
        assert "Traceback" not in proc.stderr, proc.stderr
        ran.append(command)
    assert len(ran) >= 8
    for lang, body, line in fenced_blocks(readme()):   # the Python examples, in order
        if lang == "python":
            namespace = {}
            exec(compile(body, f"README.md line {line}", "exec"), namespace)
