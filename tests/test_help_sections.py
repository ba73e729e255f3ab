"""--help a new user can read (issue 22, item 14): grouped sections, a short usage, examples
that parse, one entry for flags that mean the same, no pointer to itself; --help-config lists
every config key -o accepts (the model.* ones too) with its default and allowed values; and
--quiet takes true|false like every other boolean, the bare form still working."""
import dataclasses
import os
import re
import shlex
import subprocess
import sys

import pytest

from helpers_cli import ROOT
from ppddpm.cli.help_config import SPECIAL_RANGES
from ppddpm.cli.parse import parse_command_line
from ppddpm.config import Config, load_config
from ppddpm.config.checks import CHOICES, RANGES

GROUPS = ["what to run:", "data (config section data.*):", "diffusion process (diffusion.*):",
          "training (train.*):", "sampling: --mode denoise and the grids written while training "
          "(sample.*):", "convert (--mode convert):", "evaluation (--mode eval | fid_stats):",
          "device and speed:"]


def script_output(script, *args, expect=0):
    env = dict(os.environ, PYTHONPATH=ROOT, COLUMNS="100")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def helps():
    return {s: script_output(s, "--help").stdout
            for s in ("run_cifar10.py", "run_cifar10_ddim.py", "run_toy.py")}


@pytest.mark.parametrize("script", ["run_cifar10.py", "run_cifar10_ddim.py", "run_toy.py"])
def test_help_has_sections_a_short_usage_and_examples_that_parse(helps, script):
    text = helps[script]
    lines = text.splitlines()
    assert lines[0] == (f"usage: {script} [--mode MODE] [--config FILE] [-o SECTION.KEY=VALUE ...] "
                        "[flags]") and lines[1] == ""
    titles = [line for line in lines if re.match(r"^\S.*:$", line)]
    assert titles == ["options:"] + GROUPS + ["examples:"], titles
    assert "See --help" not in text and len(lines) < 300
    examples = lines[lines.index("examples:") + 1:]
    commands = [l.strip() for l in examples[:examples.index("")]]
    assert 3 <= len(commands) <= 5 and all(c.startswith(f"python {script}") for c in commands)
    config = os.path.join(ROOT, "configs", "toy.yaml" if "toy" in script else "cifar10.yaml")
    for command in commands:   # every example is a valid command line of this script
        argv = shlex.split(command.split("#")[0])[2:]
        parse_command_line("test", config, argv=argv)
    assert f"python {script} --help-config lists them all" in " ".join(examples)


def test_flags_that_mean_the_same_have_one_entry(helps):
    text = helps["run_cifar10.py"]
    assert len(re.findall(r"^  --steps N, --ddim_steps N\n", text, re.M)) == 1
    assert not re.search(r"^  --ddim_steps", text, re.M) and "the same as --ddim_steps" not in text
    assert len(re.findall(r"^  --sequence_every N, --interval N", text, re.M)) == 1
    # both names still parse, each on its own
    for flag in ("--steps", "--ddim_steps"):
        args = parse_command_line("t", os.path.join(ROOT, "configs", "cifar10.yaml"), argv=[flag, "7"])
        assert getattr(args, flag[2:]) == 7 and args.given == [flag[2:]]


def test_the_examples_name_the_scripts_own_files(helps):
    assert "--pretrained_path ckpts/ddpm_cifar10_i800000_ema.pdparam" in helps["run_cifar10.py"]
    assert "--pretrained_path toy_out/gaussian25/ckpts/ddpm_toy_i2000_ema.pdparam" in helps["run_toy.py"]
    assert re.search(r"^  python run_cifar10_ddim.py --pretrained_path \S+$", helps["run_cifar10_ddim.py"],
                     re.M)


def config_lines(text):
    """{key: (default, what follows it)} of --help-config's key lines."""
    out = {}
    for m in re.finditer(r"^  (\w+\.\w+) = (.*?)   \((.*)$", text, re.M):
        out[m.group(1)] = (m.group(2), m.group(3))
    return out


def test_help_config_lists_every_key_with_its_default_and_range():
    proc = script_output("run_toy.py", "--help-config", "-o", "model.ch=32")
    assert proc.stderr == ""
    listed = config_lines(proc.stdout)
    base = Config()
    keys = [f"{s.name}.{f.name}" for s in dataclasses.fields(base)
            for f in dataclasses.fields(getattr(base, s.name))]
    assert list(listed) == keys and len(keys) > 60
    cfg = load_config(os.path.join(ROOT, "configs", "toy.yaml"))
    assert listed["model.arch"][0] == cfg.model.arch == "mlp"
    assert listed["model.ch"][0] == "32"                          # what this command line gives
    assert listed["model.dropout"][1].startswith("number, in [0, 1))")
    assert listed["train.ckpt_dir"][0] == "./toy_out/gaussian25/ckpts"
    for key, rule in RANGES.items():   # (data.channels says more: 1 or 3)
        assert (SPECIAL_RANGES.get(key) or rule.text()) in listed[key][1], key
    for key, names in CHOICES.items():
        assert "one of " + " | ".join(names) in listed[key][1], key
    assert "flag: --ddim_steps --steps" in listed["sample.num_steps"][1]
    # every key has a line saying what it means
    text = proc.stdout
    for key in keys:
        after = text[text.index(f"  {key} = "):].splitlines()[1]
        assert after.startswith("      ") and len(after.strip()) > 10, key


def test_an_abbreviated_help_config_lists_the_keys_too(capsys):
    """argparse accepts --help-c; it must print the list, not start a run."""
    with pytest.raises(SystemExit) as done:
        parse_command_line("t", os.path.join(ROOT, "configs", "toy.yaml"), argv=["--help-c"])
    assert done.value.code == 0 and "  model.arch = mlp   (text, one of" in capsys.readouterr().out


@pytest.mark.parametrize("argv, quiet", [([], False), (["--quiet"], True), (["--quiet", "True"], True),
                                         (["--quiet", "false"], False), (["--quiet", "0"], False)])
def test_quiet_takes_true_false_and_stays_a_bare_switch(argv, quiet):
    args = parse_command_line("t", os.path.join(ROOT, "configs", "cifar10.yaml"), argv=argv)
    assert args.quiet is quiet


def test_a_bad_quiet_value_is_one_line():
    proc = script_output("run_cifar10.py", "--quiet", "maybe", expect=2)
    assert proc.stderr.count("\n") == 1 and "--quiet" in proc.stderr and "maybe" in proc.stderr
