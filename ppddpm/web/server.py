"""Run the page's application with uvicorn on a socket the command line has bound."""
from __future__ import annotations

import socket
from typing import Optional

import uvicorn

from .app import build_app, make_state


def serve(sock: socket.socket, models_dir: str, out_dir: str, token: Optional[str],
          engine: str = "auto") -> None:
    """Serve until Ctrl-C or SIGTERM; a running job is told to stop."""
    state = make_state(models_dir, out_dir, token, engine)
    config = uvicorn.Config(build_app(state), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        state.queue.close()
        sock.close()
