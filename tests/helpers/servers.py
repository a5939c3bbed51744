"""Loopback servers for the tests: a scripted raw HTTP server and its building blocks."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import trustme

from connectors.simulator import SensorSimulator, SimulatorConfig

__all__ = [
    "ScriptedServer",
    "StartScripted",
    "StartSim",
    "Step",
    "free_port",
    "sse_head",
    "status_head",
    "tls_context",
]


@dataclass
class Step:
    """One thing a scripted connection does: write bytes, wait on an event, or sleep."""

    write: bytes = b""
    wait: threading.Event | None = None
    sleep: float = 0.0


@dataclass
class ScriptedServer:
    """Answers connection k with ``scripts[k]`` (the last script repeats), then closes.

    A script is a list of steps; the first usually writes the status line and headers.
    ``requests`` holds each request's head, decoded, in arrival order.
    """

    scripts: list[list[Step]]
    tls: ssl.SSLContext | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    request_lines: list[str] = field(default_factory=list)
    port: int = 0
    _server: socketserver.ThreadingTCPServer | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/stream"

    def start(self) -> ScriptedServer:
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._handle(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, sock: socket.socket) -> None:
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused our certificate
        head = b""
        while b"\r\n\r\n" not in head:
            got = sock.recv(4096)
            if not got:
                return
            head += got
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        index = len(self.requests)
        self.request_lines.append(lines[0])
        self.requests.append(headers)
        script = self.scripts[min(index, len(self.scripts) - 1)]
        with contextlib.suppress(OSError):
            for step in script:
                if step.write:
                    sock.sendall(step.write)
                if step.wait is not None:
                    step.wait.wait(10)
                if step.sleep and self._stop.wait(step.sleep):
                    return
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def sse_head(extra: str = "", content_type: str = "text/event-stream") -> bytes:
    """A 200 head for a read-to-close event stream."""
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n{extra}\r\n"
    ).encode()


def status_head(status: int, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n{extra}\r\n".encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tls_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 from ``ca``: self-signed to a client."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


# The password of the ``forward_proxy`` fixture's proxy.py (user ``tester``).
PROXY_PASSWORD = "pw-Proxy-7e1f"

# What the ``simulator`` and ``scripted`` fixtures hand a test.
StartSim = Callable[[SimulatorConfig], SensorSimulator]
StartScripted = Callable[..., ScriptedServer]
