"""--help of every run script (found by glob, so scripts added later are covered): each flag
has help text, shows the value it really takes from the script's config (read here with
load_config, independently of the CLI), one default at most, true|false for booleans."""
import glob
import os
import re
import runpy
import sys

import pytest
import yaml

from ppddpm.cli.args import build_parser
from ppddpm.cli.parse import config_key, is_boolean
from ppddpm.config import apply_overrides, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "run_*.py")))
CALL = re.compile(r'script_main\(__file__,\s*"([^"]+\.yaml)"(?:,\s*ddim=(True|False))?')


def script_settings(path):
    """(config file, DDIM preset?) as the script's source states them."""
    with open(path, encoding="utf-8") as fh:
        m = CALL.search(fh.read())
    assert m, f"{path} does not call script_main(__file__, 'X.yaml', ddim=...)"
    return os.path.join(ROOT, "configs", m.group(1)), m.group(2) == "True"


def help_text(script, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(script, run_name="__main__")
    assert done.value.code == 0
    return capsys.readouterr().out


def option_blocks(text):
    """{flag: (invocation, help joined on one line)} for every option of the help text."""
    blocks, current = {}, None
    for line in text.splitlines():
        if re.match(r"^  -", line):
            invocation, *first = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            current = [invocation, first[0] if first else ""]
            for flag in re.findall(r"(?:^|, )(--?\w[\w-]*)", invocation):
                blocks[flag] = current
        elif current is not None and line.startswith("   ") and line.strip():
            current[1] = (current[1] + " " + line.strip()).strip()
        else:
            current = None
    return {k: tuple(v) for k, v in blocks.items()}


def expected_value(cfg, key):
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def shown_matches(shown, value):
    if value is None:
        return shown == "not set"
    if isinstance(value, bool):
        return shown == ("true" if value else "false")
    if isinstance(value, float):
        return float(shown) == value
    if isinstance(value, list):
        return shown == ",".join(str(v) for v in value)
    return yaml.safe_load(shown) == value if value == "" else shown == str(value)


@pytest.mark.parametrize("script", SCRIPTS, ids=os.path.basename)
def test_help_shows_the_config_defaults(script, capsys, monkeypatch):
    config, ddim = script_settings(script)
    cfg = load_config(config)
    if ddim:
        apply_overrides(cfg, ["sample.sampler=ddim"])
    cfg.sample.sample_postfix = cfg.sample.sample_postfix.replace("{sampler}", cfg.sample.sampler)
    for section, key in (("train", "ckpt_dir"), ("train", "log_dir"), ("sample", "sample_dir")):
        sub = getattr(cfg, section)   # "{dataset}" in a folder: the data set's name
        setattr(sub, key, getattr(sub, key).replace("{dataset}", cfg.data.dataset))
    text = help_text(script, capsys, monkeypatch)
    blocks = option_blocks(text)
    actions = [a for a in build_parser("")._actions if a.dest != "help"]
    assert len(blocks) >= len(actions) > 40
    assert "None" not in text
    checked = 0
    for action in actions:
        flag = action.option_strings[-1]
        line, help_ = blocks[flag]
        assert len(help_) > 15, f"{flag} has no help text"
        assert help_.lower().count("default:") <= 1, f"{flag} shows two defaults: {help_}"
        if is_boolean(action):
            assert "true|false" in line, f"{flag} does not say it takes true|false: {line}"
        key = config_key(action)
        if key is None:
            continue
        m = re.search(r"\(default: (.*?); config: ([\w.]+)\)", help_)
        if m is None:   # only for keys the config leaves unset and the help explains
            assert expected_value(cfg, key) is None and f"(config: {key})" in help_, (flag, help_)
            continue
        assert m.group(2) == key, (flag, help_)
        assert shown_matches(m.group(1), expected_value(cfg, key)), \
            f"{flag} shows {m.group(1)!r}, but {os.path.basename(config)} has {key}=" \
            f"{expected_value(cfg, key)!r}"
        checked += 1
    assert checked >= 30
    mode = re.search(r"\(default: (\w+)\)", blocks["--mode"][1]).group(1)
    assert mode == ("denoise" if ddim else "train")
    assert f"default: {os.path.join('configs', os.path.basename(config))}" in blocks["--config"][1]
    if ddim:
        assert "(default: ddim; config: sample.sampler)" in blocks["--sampler"][1]
        assert "preselects sample.sampler=ddim, --mode denoise" in text


def test_no_two_scripts_write_the_same_sample_files():
    """Each run script's default grid ({sample_dir}/sample_{postfix}.png) is its own."""
    seen = {}
    for script in SCRIPTS:
        config, ddim = script_settings(script)
        cfg = load_config(config)
        sampler = "ddim" if ddim else cfg.sample.sampler
        target = (os.path.normpath(cfg.sample.sample_dir),
                  cfg.sample.sample_postfix.replace("{sampler}", sampler))
        assert target not in seen, f"{os.path.basename(script)} and {seen.get(target)} both " \
                                   f"write {target}"
        seen[target] = os.path.basename(script)
    assert len(seen) == len(SCRIPTS) >= 5
