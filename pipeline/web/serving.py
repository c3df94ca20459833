"""Running the app under uvicorn, in one process or `web.workers` processes sharing one socket.

With several workers uvicorn binds the listening socket itself and leaves its protocol number at
0; accepted connections inherit it, and asyncio turns Nagle's algorithm off (TCP_NODELAY) only
for sockets that say IPPROTO_TCP. Every answer on a kept-alive connection after the first then
waits ~40 ms for the browser's delayed ACK (uvicorn issue #3149, open as of 0.54). `Config`
below binds the same socket and hands it on as a TCP socket with TCP_NODELAY set, which Linux
also passes to every connection it accepts.

Tested with uvicorn 0.54 (pyproject pins the range): the supervisor class is uvicorn's own.
"""

from __future__ import annotations

import socket

import uvicorn
from uvicorn.supervisors import Multiprocess


class Config(uvicorn.Config):
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
    Multiprocess(config, sockets=[config.bind_socket()]).run()
