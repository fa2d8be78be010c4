"""The model server's front under clients that do not play along (issue 24): floods of
idle and half-sent connections, stalled uploads, huge prompts, unparseable requests.
A token holder is still answered at once, every answer is JSON, and every wait has an end.

The front runs as the real server configures it (guard.uvicorn_config) with a stand-in
for the replicas; the last test floods the real `python -m backend serve`."""

import http.client
import json
import socket
import threading
import time
import urllib.parse

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from server_front import TOKEN, RunningFront, raw

from backend.bridge import wire
from backend.bridge.server_api import FRAME_TYPE
from backend.bridge.server_client import ServerClient
from backend.server.api import UPLOAD_SLOTS
from backend.server.guard import Limits

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def address(url) -> tuple:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port


def connect(url, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(address(url), timeout=10)
    if data:
        sock.sendall(data)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed `sock` (whatever it sent first), or None if it did not."""
    started = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def answer(sock: socket.socket, seconds: float = 5.0) -> tuple[int, dict]:
    """(status, JSON body) of the one response the server sends on `sock`."""
    sock.settimeout(seconds)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), json.loads(body)


def timed(call) -> tuple[float, object]:
    started = time.monotonic()
    value = call()
    return time.monotonic() - started, value


def frame(**fields) -> bytes:
    arrays = {key: value for key, value in fields.items() if isinstance(value, np.ndarray)}
    fields = {"job_id": "j1", "settings": {"resolution": 32},
              **{key: value for key, value in fields.items() if key not in arrays}}
    return b"".join(wire.encode("generate", fields, arrays))


@pytest.fixture
def make_front():
    fronts = []

    def make(**kwargs):
        fronts.append(RunningFront(**kwargs))
        return fronts[-1]

    yield make
    for front in fronts:
        front.stop()


# ---------------------------------------------------------------- floods


def test_a_token_holder_is_answered_within_a_second_through_a_flood(make_front):
    """Five times the connection bound's worth of idle connections, half-sent request heads
    and unauthenticated half-sent bodies, all kept open: the token holder still gets in."""
    limits = Limits(max_waiting=32, header_timeout=60, idle_timeout=60)  # only the bound at work here
    front = make_front(limits=limits)
    flood = [connect(front.url) for _ in range(2 * limits.max_waiting)]
    flood += [connect(front.url, b"GET /v1/health HTTP/1.1\r\nHost: x\r\nAuthoriz") for _ in range(2 * limits.max_waiting)]
    flood += [connect(front.url, b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                 b"Content-Length: 100000\r\n\r\npartial") for _ in range(limits.max_waiting)]
    try:
        client = ServerClient(front.url, TOKEN)
        seconds, health = timed(client.health)
        assert seconds < 1.0 and health["status"] == "ok"
        seconds, job_id = timed(lambda: client.submit({}, image_bytes=b"png bytes"))
        assert seconds < 1.0 and job_id
        open_now = len(front.server.config.guard.waiting)
        assert open_now <= limits.max_waiting  # the rest were closed, longest waiting first
        client.close()
    finally:
        for sock in flood:
            sock.close()


def test_idle_and_trickling_connections_end_at_their_deadline(make_front):
    front = make_front(limits=Limits(header_timeout=0.6, idle_timeout=1.0))
    idle = connect(front.url)
    assert 0.4 < closed_within(idle, 5) < 2.0
    trickle = connect(front.url)
    started = time.monotonic()
    for byte in b"GET /v1/health HTTP/1.1\r\nHost: x\r\n":  # a byte every 0.1 s: busy, but never done
        try:
            trickle.send(bytes([byte]))
        except OSError:
            break
        time.sleep(0.1)
    assert closed_within(trickle, 5) is not None and time.monotonic() - started < 3.0
    kept = connect(front.url, f"GET /v1/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    assert answer(kept)[0] == 200
    assert 0.7 < closed_within(kept, 5) < 2.5  # kept alive, then idle past idle_timeout


def test_headers_that_never_end_get_a_json_431(make_front):
    front = make_front(limits=Limits(max_head_bytes=8 << 10))
    sock = connect(front.url, b"GET /v1/health HTTP/1.1\r\nX-Long: " + b"a" * (64 << 10))
    status, body = answer(sock)
    assert status == 431 and body["error"]["code"] == "headers_too_large"


def test_requests_uvicorn_cannot_parse_get_a_json_400(make_front):
    front = make_front()
    status, body = answer(connect(front.url, b"NOT HTTP AT ALL\r\n\r\n"))
    assert status == 400 and body["error"]["code"] == "bad_request"
    assert "not valid HTTP" in body["error"]["message"]


def test_requests_beyond_the_bound_get_json_503_and_strangers_none_of_the_places(make_front):
    front = make_front(limits=Limits(max_requests=2))
    job_id = json.loads(raw(front.url, "POST", "/v1/jobs", b"hang", {**AUTH, "Content-Type": "image/png"})[2])["job_id"]
    time.sleep(0.3)  # past its progress steps: hanging, its version stays
    version = json.loads(raw(front.url, "GET", f"/v1/jobs/{job_id}", None, AUTH)[2])["version"]
    status_path = f"/v1/jobs/{job_id}?since={version}&wait=3"
    holders = [threading.Thread(target=raw, args=(front.url, "GET", status_path, None, AUTH)) for _ in range(2)]
    for thread in holders:
        thread.start()
    time.sleep(0.5)  # both long-polls are being served
    assert raw(front.url, "GET", "/v1/health")[0] == 401  # no token: answered, not counted
    status, headers, body = raw(front.url, "GET", "/v1/health", None, AUTH)
    assert status == 503 and json.loads(body)["error"]["code"] == "server_busy" and headers["retry-after"] == "1"
    for thread in holders:
        thread.join()
    assert raw(front.url, "GET", "/v1/health", None, AUTH)[0] == 200
    raw(front.url, "DELETE", f"/v1/jobs/{job_id}", None, AUTH)


def test_a_stranger_s_large_body_gets_its_401_and_then_the_connection_ends(make_front):
    front = make_front()
    host, port = address(front.url)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("POST", "/v1/jobs", body=b"x" * (4 << 20), headers={"Content-Type": "image/png"})
    response = connection.getresponse()  # read after the whole body was sent: it must still be there
    assert response.status == 401 and json.loads(response.read())["error"]["code"] == "unauthorized"
    assert response.getheader("connection") == "close"
    connection.close()


# ---------------------------------------------------------------- uploads


def stalled_upload(url, length: int = 100_000) -> socket.socket:
    return connect(url, (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                         f"Content-Type: image/png\r\nContent-Length: {length}\r\n\r\n").encode() + b"\x89PNG")


def test_stalled_uploads_time_out_with_json_408_and_free_their_slots(make_front):
    front = make_front(limits=Limits(body_read_timeout=1.0))
    stalled = [stalled_upload(front.url) for _ in range(UPLOAD_SLOTS + 2)]
    time.sleep(0.2)
    try:
        seconds, job_id = timed(lambda: ServerClient(front.url, TOKEN).submit({}, image_bytes=b"png bytes"))
        assert job_id and seconds < 3.0  # one body-read timeout, not for ever
        for sock in stalled:
            status, body = answer(sock)
            assert status == 408 and body["error"]["code"] == "request_timeout"
            assert "stopped arriving" in body["error"]["message"]
        assert front.pool.started == 1
    finally:
        for sock in stalled:
            sock.close()


def test_waiting_for_an_upload_slot_ends_with_json_503(make_front):
    front = make_front(limits=Limits(body_read_timeout=10, upload_wait=0.5))
    stalled = [stalled_upload(front.url) for _ in range(UPLOAD_SLOTS)]
    time.sleep(0.2)
    try:
        seconds, (status, headers, body) = timed(lambda: raw(front.url, "POST", "/v1/jobs", b"png",
                                                             {**AUTH, "Content-Type": "image/png"}))
        assert status == 503 and json.loads(body)["error"]["code"] == "server_busy" and seconds < 2.0
        assert headers["retry-after"] == "5"
    finally:
        for sock in stalled:
            sock.close()


# ---------------------------------------------------------------- prompts and pixels


def test_a_huge_prompt_is_refused_before_it_is_read_and_the_server_stays_free(make_front):
    front = make_front(max_upload_bytes=64 << 20)
    seconds, (status, _, body) = timed(lambda: raw(front.url, "POST", "/v1/jobs", None,
                                                   {**AUTH, "Content-Type": "text/plain", "Content-Length": str(50 << 20)}))
    assert status == 413 and "prompt may be at most" in json.loads(body)["error"]["message"] and seconds < 1.0

    results = {}

    def send_prompt():  # 40 MB of words, with no length given: refused once 256 KiB have come
        connection = http.client.HTTPConnection(*address(front.url), timeout=30)
        connection.request("POST", "/v1/jobs", body=iter([b"a chair " * (1 << 20)] * 5), encode_chunked=True,
                           headers={**AUTH, "Content-Type": "text/plain", "Transfer-Encoding": "chunked"})
        response = connection.getresponse()
        results["prompt"] = response.status, json.loads(response.read())
        connection.close()

    sender = threading.Thread(target=send_prompt)
    sender.start()
    latencies = []
    while sender.is_alive():
        latencies.append(timed(lambda: raw(front.url, "GET", "/v1/health", None, AUTH))[0])
    sender.join()
    assert results["prompt"][0] == 413
    assert max(latencies) < 1.0, latencies
    assert front.pool.started == 0


@pytest.mark.parametrize("prompt", ["\u200b", "\ufeff", "\u200b\u2060 \ufeff"])
def test_an_invisible_prompt_is_refused(make_front, prompt):
    front = make_front()
    status, _, body = raw(front.url, "POST", "/v1/jobs", prompt.encode(), {**AUTH, "Content-Type": "text/plain"})
    assert status == 400 and json.loads(body)["error"]["code"] == "bad_prompt"
    assert "no visible characters" in json.loads(body)["error"]["message"]
    assert front.pool.started == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_pixels_that_are_not_numbers_are_refused(make_front, bad):
    front = make_front()
    pixels = np.full((16, 16, 4), 0.5, np.float32)
    pixels[3, 4, 1] = bad
    status, _, body = raw(front.url, "POST", "/v1/jobs", frame(image_pixels=pixels), {**AUTH, "Content-Type": FRAME_TYPE})
    error = json.loads(body)["error"]
    assert status == 400 and error["code"] == "bad_image" and "1 pixel that is not a number" in error["message"]
    assert front.pool.started == 0


# ---------------------------------------------------------------- the real server


def test_the_real_server_answers_a_token_holder_through_a_flood(model_server):
    """`python -m backend serve` with its default bounds: three times its connection
    bound (256 waiting) in idle and half-sent connections."""
    bound = Limits().max_waiting
    flood = [connect(model_server.url) for _ in range(2 * bound)]
    flood += [connect(model_server.url, b"GET /v1/version HTTP/1.1\r\nHost: x\r\n") for _ in range(bound)]
    try:
        client = model_server.client()
        seconds, info = timed(client.api.version)
        assert seconds < 1.0 and info["api"] == 1
        status, _, body = raw(model_server.url, "GET", "/v1/version")
        assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized"
        client.close()
    finally:
        for sock in flood:
            sock.close()
