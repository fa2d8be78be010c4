"""One call per route of the model server's HTTP API (docs/server.md). Standard library + numpy.

ServerApi turns HTTP into Python: JSON answers into dicts, the `result` frame into a
protocol.Result, and every failure into a BackendError whose sentence says what to do:
ServerUnreachable, Unauthorized (check the token), ServerBusy, WorkerTimeout (no answer
in time), or the job's own error class by its code. The token is sent in a header and
never appears in a message. Each thread keeps its own keep-alive connection.
"""

import http.client
import json
import socket
import ssl
import threading
import urllib.parse

from . import protocol, wire
from .errors import BackendError, ServerBusy, ServerUnreachable, Unauthorized, WorkerTimeout, error_from

FRAME_TYPE = "application/x-image-to-3d-frame"  # one frame of docs/protocol.md as an HTTP body
API = "/v1"


class ServerApi:
    def __init__(self, url: str, token: str, *, token_source: str = "the access token", ca_file: str | None = None,
                 timeout: float = 30.0):
        """token_source: where the token came from, named when the server refuses it."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the server URL must look like http://host:port or https://host:port, got {url!r}")
        if not token or any(c.isspace() for c in token):
            raise ValueError("the server's access token is empty or holds spaces: copy it from the server's token file")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/") + API
        self._token = token
        self._token_source = token_source
        self._ssl = ssl.create_default_context(cafile=ca_file) if self._https else None
        self._local = threading.local()

    # ------------------------------------------------------------ the routes

    def health(self) -> dict:
        return self._json("GET", "/health", ok=(200, 503))

    def version(self) -> dict:
        return self._json("GET", "/version")

    def submit(self, request) -> dict:
        """POST one generate or generate_views frame (image bytes or pixels, never a path);
        the job's status."""
        body = b"".join(bytes(part) for part in wire.encode(*protocol.frame_parts(request)))
        return self._json("POST", "/jobs", body, {"Content-Type": FRAME_TYPE}, ok=(202,))

    def status(self, job_id: str, since: int | None = None, wait: float = 0.0) -> dict:
        """The job's status; with `since`, waits up to `wait` s for a newer version."""
        query = f"?since={since}&wait={wait:g}" if since is not None else ""
        return self._json("GET", f"/jobs/{job_id}{query}", timeout=self.timeout + wait)

    def result(self, job_id: str):
        """The job's protocol.Result, or a views job's protocol.ViewsResult."""
        return self._event_frame(f"/jobs/{job_id}/result", (protocol.Result, protocol.ViewsResult), "result")

    def preview(self, job_id: str) -> protocol.Preview:
        """The job's latest preview (its status's "preview" says when there is one)."""
        return self._event_frame(f"/jobs/{job_id}/preview", protocol.Preview, "preview")

    def _event_frame(self, path: str, kind, words: str):
        # the frame is read straight from the socket into the arrays' own buffers
        status, event = self._request("GET", path, read_body=self._result_event)
        if status != 200:
            self._raise_for(status, event)
        if not isinstance(event, kind):
            raise BackendError(f"the server at {self.url} sent no {words} frame")
        return event

    def _result_event(self, response):
        try:
            message = wire.FrameReader(response).read()
            return protocol.parse(message, protocol.EVENTS) if message is not None else None
        except (wire.ProtocolError, wire.StreamClosed, BackendError) as exc:
            raise BackendError(f"the server at {self.url} sent a malformed frame: {getattr(exc, 'message', exc)}") from None

    def result_glb(self, job_id: str) -> bytes:
        return self._body("GET", f"/jobs/{job_id}/result?format=glb")

    def cancel(self, job_id: str) -> dict:
        return self._json("POST", f"/jobs/{job_id}/cancel", ok=(202,))

    def forget(self, job_id: str) -> None:
        """Delete the job and its result on the server (gone already is fine)."""
        status, data = self._request("DELETE", f"/jobs/{job_id}")
        if status not in (204, 404):
            self._raise_for(status, data)

    def close(self):
        """Close this thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # ------------------------------------------------------------ HTTP

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                 timeout: float | None = None, read_body=None) -> tuple[int, object]:
        """(status, body); read_body(response) reads a 200 answer's body instead of read()."""
        timeout = self.timeout if timeout is None else timeout
        headers = {"Authorization": f"Bearer {self._token}", **(headers or {})}
        for attempt in (1, 2):
            connection = getattr(self._local, "connection", None)
            reused = connection is not None
            if connection is None:
                connection = self._local.connection = self._connect(timeout)
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            try:
                connection.request(method, self._base + path, body=body, headers=headers)
                response = connection.getresponse()
                data = read_body(response) if read_body is not None and response.status == 200 else response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()  # a kept-alive connection the server had closed meanwhile: once more, fresh
                if reused and attempt == 1:
                    continue
                raise ServerUnreachable(f"the model server at {self.url} closed the connection "
                                        f"({exc.__class__.__name__}): is it still running?") from None
            except TimeoutError:
                self.close()
                raise WorkerTimeout(f"the model server at {self.url} did not answer within {timeout:g} s") from None
            except ssl.SSLCertVerificationError as exc:
                self.close()
                raise ServerUnreachable(f"the model server at {self.url} has a certificate this computer does not "
                                        f"trust ({exc.verify_message}): give the client its CA file") from None
            except (ssl.SSLError, OSError) as exc:
                self.close()
                reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
                if isinstance(exc, socket.gaierror):
                    reason = f"unknown host {self._host}"
                raise ServerUnreachable(f"cannot reach the model server at {self.url}: {reason} - is it running, "
                                        "and are the address and port right?") from None
        raise AssertionError("unreachable")

    def _body(self, method, path) -> bytes:
        status, data = self._request(method, path)
        self._raise_for(status, data)
        return data

    def _json(self, method, path, body=None, headers=None, ok=(200,), timeout=None) -> dict:
        status, data = self._request(method, path, body, headers, timeout)
        if status not in ok:
            self._raise_for(status, data)
        try:
            return json.loads(data)
        except ValueError:
            raise BackendError(f"the server at {self.url} answered with something other than JSON: "
                               "is the URL that of an image_to_3d model server?") from None

    def _raise_for(self, status: int, data: bytes):
        if status < 400:
            return
        if status == 401:
            raise Unauthorized(f"the model server at {self.url} refused the access token: check {self._token_source} "
                               "(a server started without --token-file makes a new token at every start)")
        try:
            error = json.loads(data)["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            raise BackendError(f"the server at {self.url} answered HTTP {status}: is the URL that of an "
                               "image_to_3d model server?") from None
        if code == ServerBusy.code:
            raise ServerBusy(f"the model server at {self.url} is busy: {message}")
        raise error_from(code, message)
