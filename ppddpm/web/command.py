"""``python -m ppddpm.web --models DIR``: check the command line, then serve the page.

Every mistake a user can make here (a missing models folder, an output folder that cannot be
written, a bad or busy port, the web extra not installed) is one line and exit status 2.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import List, Optional

from ..engines import ENGINE_KINDS
from ..engines.cache import CACHE_ENV
from ..errors import ConfigError, PPDDPMError

DEFAULT_PORT = 8765
EXTRA_MODULES = ("starlette", "uvicorn")
DESCRIPTION = """\
Serve a local web page to sample the weights files under --models and watch the denoising:
pick a file and a sampler, press Sample, see the predicted x0 and x_t frames as they are
made, stop a job, download the grid PNG, the GIF and the .npz. One job runs at a time;
other tabs wait in a queue and see their place. Everything is written under --out (the
engines' export cache too, unless PPDDPM_ENGINE_CACHE names another folder)."""


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ppddpm.web", description=DESCRIPTION)
    p.add_argument("--models", required=True, metavar="DIR",
                   help="the folder of weights files (.pdparam, .pdparams, .safetensors) the "
                        "page offers; nothing outside it can be chosen")
    p.add_argument("--out", default="web_samples", metavar="DIR",
                   help="the folder every job writes into (default: ./web_samples)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 opens it to the network, with a warning)")
    p.add_argument("--port", default=str(DEFAULT_PORT),
                   help=f"the port (default {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--token", default=None,
                   help="a secret the page's address must carry (?token=...), for a shared "
                        "machine")
    p.add_argument("--engine", default="auto", choices=ENGINE_KINDS,
                   help="how the network runs, as in --mode denoise (default auto)")
    return p.parse_args(argv)


def check_models_dir(path: str) -> str:
    if not os.path.isdir(path):
        what = "is a file" if os.path.isfile(path) else "does not exist"
        raise ConfigError(f"--models {path!r} {what}; give the folder that holds your weights "
                          "files (.pdparam, .pdparams, .safetensors)")
    return os.path.realpath(path)


def check_out_dir(path: str) -> str:
    """Create --out and prove it can be written."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise ConfigError(f"--out {path!r} cannot be written ({exc.strerror}); give a folder "
                          "you can write to") from None
    return os.path.realpath(path)


def check_extra() -> None:
    missing = []
    for name in EXTRA_MODULES:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"the web page needs the web extra ({', '.join(missing)} not "
                          "installed): pip install -e \".[web]\"")


def bind(host: str, port_text: str) -> socket.socket:
    """The listening socket, bound before anything is printed, so the address is real."""
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port_text!r} must be a whole number 0..65535 (0: any free "
                          f"port; default {DEFAULT_PORT})")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno in (98, 48):   # EADDRINUSE (Linux, macOS)
            raise ConfigError(f"--port {port} is in use (another server?); choose another "
                              "with --port N, or --port 0 for any free port") from None
        raise ConfigError(f"--host {host!r} --port {port} cannot be listened on "
                          f"({exc.strerror or exc}); use --host 127.0.0.1") from None
    sock.listen(64)
    return sock


def address(host: str, port: int, token: Optional[str]) -> str:
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        models = check_models_dir(args.models)
        out = check_out_dir(args.out)
        check_extra()
        sock = bind(args.host, args.port)
    except PPDDPMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {args.host} lets every machine that reaches this one use the "
              "page and its CPU" + ("" if args.token else "; add --token SECRET on a shared "
                                    "network"), file=sys.stderr, flush=True)
    os.environ.setdefault(CACHE_ENV, os.path.join(out, "engine-cache"))
    # the web extra, imported only once it is known to be installed
    from .server import serve
    port = sock.getsockname()[1]
    print(f"ppddpm web: models from {models}, outputs in {out}", flush=True)
    print(f"ppddpm web: open {address(args.host, port, args.token)}  (Ctrl-C stops it)",
          flush=True)
    try:
        serve(sock, models, out, args.token, args.engine)
    except KeyboardInterrupt:   # uvicorn raises it again once it has shut down
        print("ppddpm web: stopped (Ctrl-C)", file=sys.stderr)
        return 130
    return 0
