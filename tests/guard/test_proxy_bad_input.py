"""Bad input and a misbehaving model: each a proper OpenAI-style HTTP error, recorded in the
ledger, and the proxy keeps serving."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.ledger import Ledger
from guard.upstream_app import ProxyHandle, ServerThread, UpstreamApp, hello, running_proxy

CHAT = "/v1/chat/completions"
JSON = {"content-type": "application/json"}
LIMIT = 1024 * 1024  # the default --max-body


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[UpstreamApp, str]]:
    app = UpstreamApp()
    with ServerThread(app) as server:
        yield app, server.url


@pytest.fixture(scope="module")
def proxy(
    upstream: tuple[UpstreamApp, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyHandle]:
    folder = tmp_path_factory.mktemp("bad-input")
    with running_proxy(folder, upstream[1], upstream_timeout=1.0) as handle:
        yield handle


@pytest.fixture(scope="module")
def http(proxy: ProxyHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        yield client


def _entry(db: Path, index: int) -> dict[str, Any]:
    with Ledger.open(db) as ledger:
        return dict(ledger.entry(index).data)


def _chat(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "test-model", "messages": [{"role": "user", "content": text}], **extra}


def _assert_recorded_error(
    response: httpx.Response, db: Path, status: int, code: str
) -> dict[str, Any]:
    """The response is OpenAI's error shape with ``code``, and the ledger holds it."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    trace = response.headers["x-custodes-trace-id"]
    index = int(response.headers["x-custodes-ledger-index"])
    assert body["custodes"] == {"trace_id": trace, "ledger_index": index}
    entry = _entry(db, index)
    assert entry["trace_id"] == trace
    assert entry["status"] == status
    assert code in json.dumps(entry["error"])
    return entry


def _still_serving(http: httpx.Client) -> None:
    assert http.get("/healthz").status_code == 200
    answer = http.post(CHAT, json=_chat("still there?"))
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == hello("still there?")


BAD_REQUESTS = [
    pytest.param(b'{"model": "test-model", "messages": [', JSON, 400, "invalid_json", id="malformed-json"),
    pytest.param(b"[1, 2, 3]", JSON, 400, "invalid_request", id="not-an-object"),
    pytest.param(
        b'{"model": "test-model", "temperature": NaN, "messages": []}', JSON, 400, "invalid_json",
        id="nan",
    ),
    pytest.param(b'{"model": "test-model"}', JSON, 400, "invalid_request", id="no-messages"),
    pytest.param(
        json.dumps(_chat(stream="yes")).encode(), JSON, 400, "invalid_request", id="stream-not-bool"
    ),
    pytest.param(
        json.dumps({"model": "test-model", "messages": []}).encode(),
        JSON, 400, "invalid_request", id="empty-messages",
    ),
    pytest.param(
        json.dumps(_chat()).encode(), {"content-type": "text/plain"}, 415,
        "unsupported_media_type", id="text-plain",
    ),
    pytest.param(
        b"model=test-model", {"content-type": "application/x-www-form-urlencoded"}, 415,
        "unsupported_media_type", id="form",
    ),
    pytest.param(
        json.dumps(_chat()).encode("utf-16"), {"content-type": "application/json; charset=utf-16"},
        415, "unsupported_media_type", id="utf-16",
    ),
    pytest.param(json.dumps(_chat()).encode(), {}, 415, "unsupported_media_type", id="unlabelled"),
    pytest.param(
        b'{"model": "test-model", "messages": [{"role": "user", "content": "caf\xe9"}]}',
        JSON, 400, "invalid_utf8", id="invalid-utf8",
    ),
    pytest.param(
        b'{"model": "test-model", "messages": [{"role": "user", "content": "\\ud800 lone"}]}',
        JSON, 400, "invalid_utf8", id="lone-surrogate",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("body", "headers", "status", "code"), BAD_REQUESTS)
def test_bad_requests_are_refused_and_recorded(
    http: httpx.Client,
    proxy: ProxyHandle,
    upstream: tuple[UpstreamApp, str],
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    calls = len(upstream[0].calls)
    response = http.post(CHAT, content=body, headers=headers)
    entry = _assert_recorded_error(response, proxy.ledger, status, code)
    assert entry["step"] == "request"
    assert len(upstream[0].calls) == calls  # nothing reached the model


def test_a_valid_surrogate_pair_is_not_refused(http: httpx.Client) -> None:
    body = b'{"model": "test-model", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
    response = http.post(CHAT, content=body, headers=JSON)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == hello("\U0001f600")


def test_a_declared_huge_body_is_refused_unread(http: httpx.Client, proxy: ProxyHandle) -> None:
    body = json.dumps(_chat("x" * LIMIT)).encode()
    response = http.post(CHAT, content=body, headers=JSON)
    _assert_recorded_error(response, proxy.ledger, 413, "body_too_large")
    _still_serving(http)


def test_a_chunked_huge_body_is_cut_off(http: httpx.Client, proxy: ProxyHandle) -> None:
    def pieces() -> Iterator[bytes]:  # no Content-Length: the proxy must count
        yield b'{"model": "test-model", "messages": [{"role": "user", "content": "'
        for _ in range(80):
            yield b"y" * 16384
        yield b'"}]}'

    response = http.post(CHAT, content=pieces(), headers=JSON)
    _assert_recorded_error(response, proxy.ledger, 413, "body_too_large")
    _still_serving(http)


def test_a_body_just_under_the_limit_is_accepted(http: httpx.Client) -> None:
    envelope = len(json.dumps(_chat("")).encode())
    text = "z" * (LIMIT - envelope)
    body = json.dumps(_chat(text)).encode()
    assert len(body) == LIMIT
    response = http.post(CHAT, content=body, headers=JSON)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == hello(text)


def test_a_bad_caller_header_is_refused(http: httpx.Client, proxy: ProxyHandle) -> None:
    response = http.post(CHAT, json=_chat(), headers={"X-Custodes-Role": "r" * 300})
    entry = _assert_recorded_error(response, proxy.ledger, 400, "invalid_header")
    assert entry["step"] == "request"
    assert response.json()["error"]["param"] == "X-Custodes-Role"


def test_an_unknown_model_is_the_upstreams_404(proxy: ProxyHandle) -> None:
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-x", max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    response = caught.value.response
    entry = _assert_recorded_error(response, proxy.ledger, 404, "model_not_found")
    assert entry["step"] == "call"
    assert response.json()["error"]["param"] == "model"
    assert "no-such-model" in response.json()["error"]["message"]


def test_a_hanging_model_is_a_504(http: httpx.Client, proxy: ProxyHandle) -> None:
    response = http.post(CHAT, json=_chat("please hang"))
    entry = _assert_recorded_error(response, proxy.ledger, 504, "upstream_timeout")
    assert entry["step"] == "call"
    assert response.json()["error"]["type"] == "timeout_error"
    _still_serving(http)


def test_a_garbled_model_is_a_502(http: httpx.Client, proxy: ProxyHandle) -> None:
    for stream in (False, True):
        response = http.post(CHAT, json=_chat("please garbage", stream=stream))
        entry = _assert_recorded_error(response, proxy.ledger, 502, "upstream_bad_response")
        assert entry["step"] == "call"
    _still_serving(http)


def test_a_stream_that_hangs_midway_ends_with_an_error_event(
    proxy: ProxyHandle, http: httpx.Client
) -> None:
    body = _chat("hang midway please", stream=True)
    with http.stream("POST", CHAT, json=body) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert "data: [DONE]" not in events
    error = json.loads(events[-1].removeprefix("data: "))
    assert error["error"]["code"] == "upstream_timeout"
    entry = _entry(proxy.ledger, error["custodes"]["ledger_index"])
    assert entry["trace_id"] == response.headers["x-custodes-trace-id"]
    assert (entry["step"], entry["status"]) == ("call", 504)
    assert "upstream_timeout" in entry["error"]
    _still_serving(http)


def test_a_client_leaving_mid_stream_is_recorded(
    tmp_path: Path, upstream: tuple[UpstreamApp, str]
) -> None:
    # The model hangs after its first chunk for longer than this test runs: only the client
    # leaving can end the exchange.
    with running_proxy(tmp_path, upstream[1], upstream_timeout=600) as proxy:
        body = _chat("hang midway please", stream=True)
        with httpx.Client(base_url=proxy.url, timeout=30) as http:
            with http.stream("POST", CHAT, json=body) as response:
                trace = response.headers["x-custodes-trace-id"]
                lines = response.iter_lines()
                assert next(line for line in lines if line.startswith("data: "))
            with Ledger.open(proxy.ledger) as ledger:
                calls: list[dict[str, Any]] = []
                for _ in range(1200):  # recorded once the proxy notices; no fixed wait
                    entries = [ledger.entry(i).data for i in range(ledger.size())]
                    calls = [e for e in entries if e["trace_id"] == trace and e["step"] == "call"]
                    if calls:
                        break
                    time.sleep(0.05)
            (call,) = calls
            assert call["status"] == 499
            assert call["error"].startswith("client_disconnected")
            steps = sorted(e["step"] for e in entries if e["trace_id"] == trace)
            assert steps == ["admission", "call", "validation"]  # what arrived was checked
            assert http.get("/healthz").status_code == 200


def test_an_unreachable_model_is_a_502(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with running_proxy(tmp_path, dead) as proxy, httpx.Client(base_url=proxy.url) as http:
        response = http.post(CHAT, json=_chat())
        _assert_recorded_error(response, proxy.ledger, 502, "upstream_unreachable")
        models = http.get("/v1/models")
        _assert_recorded_error(models, proxy.ledger, 502, "upstream_unreachable")
        assert http.get("/healthz").status_code == 200


def test_routes_not_served(http: httpx.Client) -> None:
    wrong_method = http.get(CHAT)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    unknown = http.post("/v1/embeddings", json={})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.binary(max_size=300))
def test_any_bytes_get_an_answer_and_a_record(
    http: httpx.Client, proxy: ProxyHandle, body: bytes
) -> None:
    response = http.post(CHAT, content=body, headers=JSON)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] in {"invalid_json", "invalid_utf8", "invalid_request"}
    entry = _entry(proxy.ledger, int(response.headers["x-custodes-ledger-index"]))
    assert entry["trace_id"] == response.headers["x-custodes-trace-id"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(messages=JSON_VALUES, model=JSON_VALUES)
def test_any_json_shape_is_checked_at_the_edge(
    http: httpx.Client, proxy: ProxyHandle, messages: Any, model: Any
) -> None:
    response = http.post(CHAT, json={"model": model, "messages": messages})
    well_formed = (
        isinstance(model, str)
        and 0 < len(model) <= 256
        and isinstance(messages, list)
        and len(messages) > 0
        and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and (
                m.get("content") is None
                or isinstance(m.get("content"), str)
                or (
                    isinstance(m.get("content"), list)
                    and all(isinstance(p, dict) for p in m["content"])
                )
            )
            for m in messages
        )
    )
    if well_formed:
        # Past the edge: the guard's own answer (allowed, refused) or the model's 404.
        assert response.status_code in {200, 400, 403, 404}
    else:
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"
    entry = _entry(proxy.ledger, int(response.headers["x-custodes-ledger-index"]))
    assert entry["trace_id"] == response.headers["x-custodes-trace-id"]


def test_a_ledger_that_cannot_record_fails_closed(
    tmp_path: Path, upstream: tuple[UpstreamApp, str]
) -> None:
    with running_proxy(tmp_path, upstream[1]) as proxy, httpx.Client(base_url=proxy.url) as http:
        assert http.post(CHAT, json=_chat("before")).status_code == 200
        # Rewrite the tree behind custodes' back: the ledger refuses to extend it.
        with sqlite3.connect(proxy.ledger) as db:
            db.execute("UPDATE tiles SET hashes = zeroblob(length(hashes))")
        # The admission of the request under way when the ledger breaks was staged, to be
        # recorded with its call: the model answered, but the answer is withheld.
        response = http.post(CHAT, json=_chat("after the tampering"))
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "custodes_unavailable"
        assert "x-custodes-ledger-index" not in response.headers
        assert "choices" not in response.json()
        # From then on admission is recorded before the call: nothing goes to the model.
        calls = len(upstream[0].calls)
        response = http.post(CHAT, json=_chat("once the ledger is known broken"))
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "custodes_unavailable"
        assert "x-custodes-ledger-index" not in response.headers
        assert len(upstream[0].calls) == calls  # nothing went to the model unrecorded
        assert http.get("/healthz").status_code == 200
