"""The command line in two phases, so that ``--help`` shows what each flag really defaults to.

When ``--help`` is asked for, phase 1 reads only ``--config`` and ``-o`` and resolves the
script's config as a run with no other flag would (the YAML, the script's preset such as the DDIM sampler, the overrides).
Phase 2 builds the full parser (args.build_parser) and writes into every flag's help the
value it takes from that config, with the config key, ``true|false`` for booleans, and one
default per flag. The rules read only the parser and CONFIG_FLAGS, so flags added later get
the same treatment without work of their own.

``args.given`` lists the destinations typed on the command line, found by parsing argv a
second time with every default suppressed (never guessed from a value being None). It is a
sorted list, since the namespace is stored as the checkpoints' ``options``.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Optional, Sequence

from ..config import Config
from ..config.flags import CONFIG_FLAGS, EXTRA_FLAG_KEYS
from ..errors import PPDDPMError
from .args import HelpFormatter, bool_flag, build_parser
from .help_config import config_help, examples, format_value
from .resolve import resolve_config


def parse_command_line(description: str, default_config: str, preset: Sequence[str] = (),
                       default_mode: str = "train",
                       argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_help = asks_for_help(argv) or asks_for_config_help(argv)
    shown = shown_config(argv, default_config, preset) if wants_help else None
    parser = build_parser(describe_script(description, preset, default_mode))
    label = os.path.join(os.path.basename(os.path.dirname(default_config)),
                         os.path.basename(default_config))
    if asks_for_config_help(argv):   # like --help: to stdout, status 0
        print(config_help(shown, label, parser.prog))
        parser.exit(0)
    parser.epilog = examples(parser.prog, shown, default_mode) if wants_help else None
    annotate_help(parser, shown, default_mode, label)
    one_line_errors(parser)
    args = parser.parse_args(argv)
    args.given = sorted(given_dests(parser, argv))
    return args


def asks_for_help(argv: Sequence[str]) -> bool:
    """-h, --help or an abbreviation of it (argparse accepts --he)."""
    return any(a == "-h" or (len(a) > 3 and "--help".startswith(a)) for a in argv)


def asks_for_config_help(argv: Sequence[str]) -> bool:
    """--help-config or an abbreviation of it (--help-c), which argparse would accept."""
    return any(a.startswith("--help-") and "--help-config".startswith(a) for a in argv)


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """A bad flag gets one line and status 2, not the 40-line usage."""
    def error(message: str):
        parser.exit(2, f"error: {message} (python {parser.prog} --help lists every flag)\n")
    parser.error = error


def describe_script(description: Optional[str], preset: Sequence[str], default_mode: str) -> str:
    text = (description or "").strip()
    if preset or default_mode != "train":
        chosen = ", ".join(list(preset) + [f"--mode {default_mode}"])
        text += f"\n\nThis script preselects {chosen}; flags and -o change them."
    return text


def shown_config(argv: Sequence[str], default_config: str, preset: Sequence[str]) -> Optional[Config]:
    """The config a run with these --config/-o and no other flag would use (None if it fails:
    the run itself will then say why)."""
    peek = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    peek.add_argument("--config")
    peek.add_argument("-o", "--override", action="extend", nargs="+", default=[])
    known, _ = peek.parse_known_args(argv)
    empty = build_parser("").parse_args([])
    empty.config, empty.override, empty.given = known.config, known.override, []
    try:
        with warnings.catch_warnings():   # the run itself warns, if it comes to that
            warnings.simplefilter("ignore")
            return resolve_config(empty, default_config, preset)
    except (PPDDPMError, ValueError, OSError):
        return None


def given_dests(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set:
    """Destinations set by ``argv`` itself: parse again with every default suppressed."""
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        return set(vars(parser.parse_args(argv)))
    finally:
        for action, default in saved:
            action.default = default


def config_value(cfg: Config, key: str):
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def is_boolean(action: argparse.Action) -> bool:
    """Flags that take true/false (typed by args.bool_flag)."""
    return action.type is bool_flag


def config_key(action: argparse.Action) -> Optional[str]:
    entry = CONFIG_FLAGS.get(action.dest)
    return entry[0] if entry else EXTRA_FLAG_KEYS.get(action.dest)


def annotate_help(parser: argparse.ArgumentParser, cfg: Optional[Config], default_mode: str,
                  config_label: str) -> None:
    """Write each flag's real default into its help (see the module docstring)."""
    parser.formatter_class = HelpFormatter  # one default per flag: ours
    for action in parser._actions:
        if action.dest == "help" or action.help == argparse.SUPPRESS:
            continue
        if action.dest == "mode":
            action.default = default_mode
        if is_boolean(action):
            action.metavar = "true|false"   # nargs "?" flags print it in brackets
        text = action.help or ""
        if "%(" not in text:   # argparse %-formats help: keep literal percent signs
            text = text.replace("%", "%%")
        key = config_key(action)
        if action.dest == "config":
            text += f" (default: {config_label}, this script's; the defaults shown below are " \
                    "read from the file given here)"
        elif key is not None:
            try:
                value = None if cfg is None else config_value(cfg, key)
            except AttributeError:   # a key this version's config does not have
                value = None
            # A value, or "not set" unless the help already says what happens without one.
            if value is not None or (cfg is not None and "default" not in text.lower()):
                shown = format_value(value).replace("%", "%%")
                text += f" (default: {shown}; config: {key})"
            else:
                text += f" (config: {key})"
        elif "default" not in text.lower() and action.default not in (None, argparse.SUPPRESS) \
                and action.nargs != 0 and not isinstance(action.default, list):
            text += f" (default: {format_value(action.default)})".replace("%", "%%")
        action.help = text
