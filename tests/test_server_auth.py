"""The server's token files and its bearer-token gate, without a server."""

import asyncio
import os
import stat

import pytest

from backend.server.auth import RequireBearerToken, TokenFileError, load_or_create_token, read_token_file


def test_generated_token_file_is_private_and_fresh_each_start(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    first, path, created = load_or_create_token(None)
    second, same_path, _ = load_or_create_token(None)
    assert created and path == same_path == tmp_path / "image_to_3d" / "server-token"
    assert first != second and len(first) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == second


def test_given_token_file_is_created_if_missing_then_reused(tmp_path):
    path = tmp_path / "sub" / "token"
    token, _, created = load_or_create_token(path)
    again, _, created_again = load_or_create_token(path)
    assert created and not created_again and token == again
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_token_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "token"
    path.write_text("x" * 32)
    path.chmod(0o644)
    with pytest.raises(TokenFileError, match="chmod 600"):
        read_token_file(path)


@pytest.mark.parametrize("text", ["short", "two words here and there", ""])
def test_bad_token_contents_are_refused(tmp_path, text):
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(TokenFileError):
        read_token_file(path)


def call_gate(headers, scope_type="http"):
    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(scope["type"])

    async def send(message):
        sent.append(message)

    gate = RequireBearerToken(app, "s3cret-token-value")
    scope = {"type": scope_type, "headers": headers, "path": "/anything"}
    asyncio.run(gate(scope, None, send))
    return reached, sent


@pytest.mark.parametrize("headers", [
    [],
    [(b"authorization", b"Bearer wrong")],
    [(b"authorization", b"Basic s3cret-token-value")],
    [(b"authorization", b"s3cret-token-value")],
    [(b"authorization", b"Bearer s3cret-token-valueX")],
    [(b"authorization", b"Bearer s3cret-token-value"), (b"authorization", b"Bearer other")],
])
def test_gate_refuses_without_the_exact_token(headers):
    reached, sent = call_gate(headers)
    assert reached == []
    assert sent[0]["status"] == 401
    assert (b"www-authenticate", b'Bearer realm="image_to_3d"') in sent[0]["headers"]
    assert b"check the token file" in sent[1]["body"]


def test_gate_passes_the_right_token_any_scheme_case():
    assert call_gate([(b"authorization", b"bearer s3cret-token-value")])[0] == ["http"]
    assert call_gate([(b"authorization", b"Bearer s3cret-token-value")])[0] == ["http"]


def test_gate_closes_websockets_and_passes_lifespan():
    reached, sent = call_gate([(b"authorization", b"Bearer s3cret-token-value")], "websocket")
    assert reached == [] and sent == [{"type": "websocket.close", "code": 1008}]
    assert call_gate([], "lifespan")[0] == ["lifespan"]
