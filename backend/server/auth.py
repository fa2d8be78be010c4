"""The bearer token: where it lives on disk, and the gate that checks it on every request.

The gate is the outermost ASGI layer, so no route, no 404 and no body parsing is
reached without the token: a request without it costs the server one header lookup.
"""

import hmac
import json
import os
import secrets
from pathlib import Path

from ..bridge.tokens import TokenFileError, read_token_file  # noqa: F401 - TokenFileError: the callers' to catch

TOKEN_BYTES = 32  # 256 bits, as urlsafe base64: 43 characters
TOKEN_FILE_NAME = "server-token"

UNAUTHORIZED_MESSAGE = (
    "missing or wrong access token: check the token file given to the client "
    "(the server prints its path when it starts)"
)


def default_state_dir() -> Path:
    """Per-user folder for the generated token ($XDG_STATE_HOME/image_to_3d)."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "image_to_3d"


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def write_private_file(path: Path, text: str):
    """Write `text` so that only the owner can ever read it (no window with wider bits)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        if os.name == "posix":
            os.fchmod(fd, 0o600)  # the file may have existed with wider bits
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def load_or_create_token(token_file: Path | None) -> tuple[str, Path, bool]:
    """(token, its file, whether it was created now).

    No file given: a fresh token in the state folder on every start, so a token handed
    out earlier stops working when the server restarts. A given file that does not exist
    yet is created with a fresh token (handy for scripted set-ups).
    """
    if token_file is None:
        path = default_state_dir() / TOKEN_FILE_NAME
    else:
        path = Path(token_file).expanduser()
        if path.exists():
            return read_token_file(path), path, False
    token = new_token()
    write_private_file(path, token + "\n")
    return token, path, True


class RequireBearerToken:
    """ASGI middleware: `Authorization: Bearer <token>` or 401 on every path and method.

    Compared in constant time (hmac.compare_digest over bytes). Non-HTTP scopes other
    than the lifespan (websockets) are refused: the API has none.
    """

    def __init__(self, app, token: str):
        self.app = app
        self._expected = token.encode("utf-8")

    def is_authorized(self, headers) -> bool:
        values = [value for name, value in headers if name == b"authorization"]
        if len(values) != 1:  # none, or an ambiguous repeat
            return False
        scheme, _, given = values[0].partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(given.strip(), self._expected)

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, send)
        elif kind == "http" and self.is_authorized(scope.get("headers", ())):
            await self.app(scope, receive, send)
        elif kind == "http":
            await send_unauthorized(send)
        else:
            await send({"type": "websocket.close", "code": 1008})


async def send_unauthorized(send):
    body = json.dumps({"error": {"code": "unauthorized", "message": UNAUTHORIZED_MESSAGE}}).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"www-authenticate", b'Bearer realm="image_to_3d"'),
            (b"connection", b"close"),  # nothing more to do here without the token: the place goes at once
        ],
    })
    await send({"type": "http.response.body", "body": body})
