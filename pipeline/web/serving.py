"""Running the app under uvicorn, in one process or `web.workers` processes sharing one socket.

With several workers uvicorn binds the listening socket itself and leaves its protocol number at
0; accepted connections inherit it, and asyncio turns Nagle's algorithm off (TCP_NODELAY) only
for sockets that say IPPROTO_TCP. Every answer on a kept-alive connection after the first then
waits ~40 ms for the browser's delayed ACK (uvicorn issue #3149, open as of 0.54). `Config`
below binds the same socket and hands it on as a TCP socket with TCP_NODELAY set, which Linux
also passes to every connection it accepts.

Tested with uvicorn 0.54 (pyproject pins the range): the supervisor class is uvicorn's own.

A worker process dies with the supervisor, whatever kills it (pipeline.children): uvicorn's
workers only notice a supervisor that stopped them, so a killed `custdq serve` left them
serving, orphaned, on its port for ever. `Config.load`, which each worker runs first, binds it
to the supervisor's pid (taken before the workers are spawned and sent with the config).
"""

from __future__ import annotations

import os
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from pipeline import children


class Config(uvicorn.Config):
    supervisor: int | None = None  # the supervisor's pid, in its workers' copies of the config

    def load(self) -> None:
        if self.supervisor is not None and self.supervisor != os.getpid():  # in a worker process
            children.bind(self.supervisor)
        super().load()

    def bind_socket(self) -> socket.socket:
        bound = super().bind_socket()
        if bound.family not in (socket.AF_INET, socket.AF_INET6):
            return bound
        tcp = socket.socket(fileno=bound.detach())  # family, type and protocol read from the descriptor
        tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return tcp


def run(app, workers: int, **options) -> None:
    """Serve `app` (an app, or with workers > 1 the import string of an app factory)."""
    if workers <= 1:
        uvicorn.Server(Config(app, **options)).run()
        return
    config = Config(app, factory=True, workers=workers, **options)
    config.supervisor = os.getpid()
    Multiprocess(config, sockets=[config.bind_socket()]).run()
