"""pipeline.web.serving: the socket several uvicorn workers share hands every connection it
accepts on with Nagle's algorithm off (a real socket on loopback)."""

from __future__ import annotations

import socket

from pipeline.web.serving import Config


def test_the_shared_socket_accepts_connections_without_nagle():
    async def app(scope, receive, send):  # never called: only the socket is under test
        raise AssertionError

    listener = Config(app, host="127.0.0.1", port=0).bind_socket()
    listener.listen()  # as the worker's event loop does
    try:
        assert listener.proto == socket.IPPROTO_TCP  # what asyncio checks before it sets TCP_NODELAY itself
        client = socket.create_connection(listener.getsockname()[:2], timeout=5)
        accepted, _ = listener.accept()
        try:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            accepted.close()
            client.close()
    finally:
        listener.close()
