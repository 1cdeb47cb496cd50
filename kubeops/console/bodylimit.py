"""A cap on request bodies for the console (a pure ASGI wrapper in front of the app).

Why: the login form is open to anyone who can reach the console, and a form is read whole into memory; without a
cap one request announcing (or streaming) gigabytes would take the console's memory. Every console form is a few
kilobytes, so anything over `MAX_BODY_BYTES` is answered 413 before the app sees it: at once when
``Content-Length`` says so, as soon as the limit is passed for a streamed (chunked) body.
"""

from __future__ import annotations

from typing import Any

MAX_BODY_BYTES = 64 * 1024

_TOO_LARGE = b"request body too large: the console accepts at most 65536 bytes"


class BodyLimit:
    """Pure ASGI wrapper refusing bodies over `limit` bytes with 413 (nothing of them reaches the app)."""

    def __init__(self, app: Any, *, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.state = app.state
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _refuse(send)
            return
        seen = 0
        refused = False

        async def counted() -> Any:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # answer now; to the app the client is gone
                    refused = True
                    await _refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def muted(message: Any) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, muted)
        except Exception:
            if not refused:
                raise
            # the app saw a client gone (ClientDisconnect) after our 413: nothing more to say


async def _refuse(send: Any) -> None:
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(_TOO_LARGE)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": _TOO_LARGE})
