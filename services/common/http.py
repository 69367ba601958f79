"""The HTTP endpoint every service serves: `/metrics` for Prometheus and `/health` for operators."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)
_STATUS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HttpEndpoint:
    """A small asyncio HTTP/1.1 server: GET /metrics and GET /health, nothing else."""

    def __init__(self, host: str, port: int, health: Callable[[], dict[str, Any]],
                 registry: CollectorRegistry = REGISTRY):
        self.host, self.port = host, port
        self._health = health
        self._registry = registry
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen; when port is 0 the chosen port is stored in `self.port`."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path = _request_line(request)
            status, ctype, body = await self._route(method, path)
            writer.write(
                f"HTTP/1.1 {status} {_STATUS[status]}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method != "GET":
            return 405, "text/plain", b"only GET\n"
        route = path.split("?", 1)[0]
        if route == "/metrics":
            # In a thread: a large exposition must not stall /health and the consumer on the event loop.
            return 200, CONTENT_TYPE_LATEST, await asyncio.to_thread(generate_latest, self._registry)
        if route == "/health":
            health = self._health()
            status = 200 if health.get("status") == "ok" else 503
            return status, "application/json", json.dumps(health).encode()
        return 404, "text/plain", b"try /metrics or /health\n"


def _request_line(request: bytes) -> tuple[str, str]:
    parts = request.split(b"\r\n", 1)[0].decode("latin-1").split()
    return (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
