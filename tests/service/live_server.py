"""Serve an app for real, under uvicorn in a background thread on a free 127.0.0.1 port, for load tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI


def wait_until_ready(url: str, alive: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll `url`/readyz until it answers 200; fail when the server stops being `alive` or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=5, trust_env=False) as client:
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if not alive() or time.monotonic() > deadline:
                raise AssertionError(f"the service did not become ready in {timeout_s:g} s")
            time.sleep(0.05)


@contextmanager
def live_server(app: FastAPI, ready_timeout_s: float = 60.0) -> Iterator[str]:
    """Start `app` (lifespan included), wait until /readyz answers 200, yield its base URL, then shut it down.

    The socket is bound here, to port 0, and handed to uvicorn, so there is no race for a free port. Off the
    main thread uvicorn installs no signal handlers; setting `should_exit` stops it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # Keep-alive longer than httpx's 5 s pool expiry (uvicorn's default equals it and races: a client may reuse a
    # connection the server is closing, a ReadError), as `naba serve` does.
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=5, timeout_keep_alive=75
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_until_ready(url, thread.is_alive, ready_timeout_s)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        if thread.is_alive():
            raise AssertionError("uvicorn did not shut down within 30 s")
