"""The suite's in-process HTTP client: Starlette's ``TestClient`` for the app's lifespan and
event loop, with each request handed to that loop once.

``TestClient`` runs a request through its blocking portal in several hops between the test's
thread and the loop's (the request, then each ``receive`` and ``send`` of the ASGI
conversation), about 1.5 ms of CPU per request on top of what the app does: a third to a half
of a typical in-process request in this suite. Here the whole request is one coroutine on the
loop (httpx's own ``ASGITransport``, reading the whole response there), scheduled with asyncio's
``run_coroutine_threadsafe`` (the portal's own ``call`` adds an anyio task and cancel scope per
call: another 0.2-0.3 ms). The app sees the same ASGI scope (``testclient:50000`` as the
client, ``testserver`` as the host) and answers a server error with a 500 as
``raise_server_exceptions=False`` does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi.testclient import TestClient


class _OneHop(httpx.BaseTransport):
    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._asgi = httpx.ASGITransport(
            app=app, raise_app_exceptions=False, client=("testclient", 50000)
        )
        self._loop = loop

    async def _send(self, request: httpx.Request) -> httpx.Response:
        response = await self._asgi.handle_async_request(request)
        content = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # a sync body becomes bytes the loop can read
        return asyncio.run_coroutine_threadsafe(self._send(request), self._loop).result()


class InProcessClient(TestClient):
    """A ``TestClient`` (use it in a ``with`` block, as the lifespan needs) whose requests
    cost one hop onto the app's loop."""

    def __enter__(self) -> InProcessClient:
        super().__enter__()
        assert self.portal is not None
        self._transport = _OneHop(self.app, self.portal.call(_running_loop))
        return self


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()
