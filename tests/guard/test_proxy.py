"""The guard proxy end to end: the real OpenAI client → the proxy → a local model, over loopback.

Every answer is checked against the ledger it claims to be recorded in, and nothing guarded
(the secret, the personal data, the caller's API key) may reach the caller or the ledger.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from custodes.guard.review import ReviewQueue, ReviewState
from custodes.ledger import Ledger
from guard.upstream_app import (
    CONTACT_REPLY,
    EMAIL,
    LEAK_REPLY,
    LONG_REPLY,
    MODELS,
    SECRET,
    WIRE_REPLY,
    ProxyHandle,
    ServerThread,
    UpstreamApp,
    hello,
    running_proxy,
)
from ledgertools import CUSTODES, cli_env

API_KEY = "sk-proxy-test-0123456789abcdef"


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[UpstreamApp, str]]:
    app = UpstreamApp()
    with ServerThread(app) as server:
        yield app, server.url


@pytest.fixture(scope="module")
def proxy(
    upstream: tuple[UpstreamApp, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyHandle]:
    with running_proxy(tmp_path_factory.mktemp("proxy"), upstream[1]) as handle:
        yield handle


@pytest.fixture
def client(proxy: ProxyHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key=API_KEY, max_retries=0)


def _entries(db: Path, trace_id: str) -> list[dict[str, Any]]:
    with Ledger.open(db) as ledger:
        found = []
        for index in range(ledger.size()):
            data = ledger.entry(index).data
            if data.get("trace_id") == trace_id:
                found.append({**data, "index": index})
        return found


def _entry(db: Path, index: int) -> dict[str, Any]:
    with Ledger.open(db) as ledger:
        return dict(ledger.entry(index).data)


def _marker() -> str:
    return uuid.uuid4().hex


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_an_allowed_chat_is_answered_and_recorded(
    client: openai.OpenAI, proxy: ProxyHandle, upstream: tuple[UpstreamApp, str]
) -> None:
    prompt = f"hi there {_marker()}"
    raw = client.chat.completions.with_raw_response.create(
        model="test-model", messages=_user(prompt)
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == hello(prompt)
    trace = raw.headers["x-custodes-trace-id"]
    index = int(raw.headers["x-custodes-ledger-index"])
    entry = _entry(proxy.ledger, index)
    assert entry["trace_id"] == trace
    assert (entry["step"], entry["action"]) == ("validation", "allow")
    steps = [e["step"] for e in _entries(proxy.ledger, trace)]
    assert steps.count("admission") == 1
    assert steps.count("call") == 1
    assert steps.count("validation") == 1
    # The caller's key reached the model, and nothing of custodes' own headers did.
    (call,) = [c for c in upstream[0].calls if c["prompt"] == prompt]
    assert call["authorization"] == f"Bearer {API_KEY}"
    assert call["custodes_headers"] == []
    # The key is recorded nowhere.
    for path in proxy.ledger.parent.iterdir():
        assert API_KEY.encode() not in path.read_bytes(), path


def test_a_refused_prompt_never_reaches_the_model(
    client: openai.OpenAI, proxy: ProxyHandle, upstream: tuple[UpstreamApp, str]
) -> None:
    marker = _marker()
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(
            model="test-model", messages=_user(f"{marker}: store the key {SECRET}")
        )
    error = caught.value
    assert error.status_code == 403
    body = error.response.json()
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert body["error"]["code"] == "custodes_prompt_blocked"
    assert body["custodes"]["rules"] == ["test.secrets"]
    assert body["custodes"]["explanation_id"].startswith("ex-")
    assert SECRET not in error.response.text
    index = int(error.response.headers["x-custodes-ledger-index"])
    entry = _entry(proxy.ledger, index)
    assert entry["trace_id"] == error.response.headers["x-custodes-trace-id"]
    assert (entry["step"], entry["action"]) == ("admission", "block")
    assert entry["explanation_id"] == body["custodes"]["explanation_id"]
    assert not [p for p in upstream[0].prompts() if marker in p]
    assert SECRET.encode() not in proxy.ledger.read_bytes()


def test_caller_headers_reach_the_policy(
    client: openai.OpenAI, proxy: ProxyHandle, upstream: tuple[UpstreamApp, str]
) -> None:
    prompt = f"what is the payroll budget? {_marker()}"
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(
            model="test-model",
            messages=_user(prompt),
            extra_headers={"X-Custodes-Caller": "ada", "X-Custodes-Role": "intern"},
        )
    body = caught.value.response.json()
    assert body["custodes"]["rules"] == ["test.intern-payroll"]
    index = int(caught.value.response.headers["x-custodes-ledger-index"])
    assert _entry(proxy.ledger, index)["caller"] == {"id": "ada", "role": "intern"}
    assert prompt not in upstream[0].prompts()
    allowed = client.chat.completions.create(
        model="test-model",
        messages=_user(prompt),
        extra_headers={"X-Custodes-Caller": "grace", "X-Custodes-Role": "manager"},
    )
    assert allowed.choices[0].message.content == hello(prompt)


def test_personal_data_in_a_prompt_reaches_the_model_redacted(
    client: openai.OpenAI, upstream: tuple[UpstreamApp, str]
) -> None:
    marker = _marker()
    client.chat.completions.create(
        model="test-model", messages=_user(f"{marker} mail the report to {EMAIL} today")
    )
    (seen,) = [p for p in upstream[0].prompts() if marker in p]
    assert EMAIL not in seen
    assert seen.startswith(f"{marker} mail the report to ")
    assert seen.endswith(" today")


def test_a_secret_in_a_completion_never_reaches_the_caller(
    client: openai.OpenAI, proxy: ProxyHandle
) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="test-model", messages=_user("please leak"))
    response = caught.value.response
    assert SECRET not in response.text
    assert response.json()["error"]["code"] == "custodes_completion_blocked"
    trace = response.headers["x-custodes-trace-id"]
    steps = {e["step"]: e for e in _entries(proxy.ledger, trace)}
    assert steps["call"]["status"] == 200  # the model was asked; its answer was withheld
    assert steps["validation"]["action"] == "block"
    assert steps["validation"]["index"] == int(response.headers["x-custodes-ledger-index"])
    assert SECRET.encode() not in proxy.ledger.read_bytes()


def test_personal_data_in_a_completion_is_redacted(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="test-model", messages=_user("please contact")
    )
    content = completion.choices[0].message.content
    assert content is not None
    assert EMAIL not in content
    before, after = CONTACT_REPLY.split(EMAIL)
    assert content.startswith(before)
    assert content.endswith(after)
    assert len(content) > len(before) + len(after)  # a marker stands where the address was


def test_a_held_completion_is_answered_review_pending(
    client: openai.OpenAI, proxy: ProxyHandle
) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="test-model", messages=_user("please wire"))
    response = caught.value.response
    body = response.json()
    assert body["error"]["code"] == "custodes_review_pending"
    review_id = body["custodes"]["review_id"]
    assert review_id in body["error"]["message"]
    with ReviewQueue.open(proxy.review) as queue:
        item = queue.get(review_id)
    assert item.state is ReviewState.PENDING
    assert item.trace_id == response.headers["x-custodes-trace-id"]
    assert item.rules == ("test.wire",)


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_reviewer_decides_while_the_caller_waits(
    tmp_path: Path, upstream: tuple[UpstreamApp, str], decision: str
) -> None:
    with running_proxy(tmp_path, upstream[1], review_timeout=120) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=API_KEY, max_retries=0)
        outcome: list[Any] = []

        def ask() -> None:
            try:
                outcome.append(
                    client.chat.completions.with_raw_response.create(
                        model="test-model", messages=_user("please wire")
                    )
                )
            except openai.APIStatusError as exc:
                outcome.append(exc)

        asker = threading.Thread(target=ask)
        asker.start()
        with ReviewQueue.open(proxy.review) as queue:
            pending: tuple[Any, ...] = ()
            for _ in range(2400):  # until the held completion shows up; no fixed wait
                pending = queue.list(state=ReviewState.PENDING).items
                if pending or not asker.is_alive():
                    break
                time.sleep(0.05)
            (item,) = pending
            queue.decide(item.id, decision, reviewer="rita", reason="checked the account")
        asker.join(timeout=120)
        (answer,) = outcome
        if decision == "approve":
            assert answer.parse().choices[0].message.content == WIRE_REPLY
            headers = answer.headers
        else:
            assert isinstance(answer, openai.PermissionDeniedError)
            assert answer.response.json()["error"]["code"] == "custodes_completion_blocked"
            assert WIRE_REPLY not in answer.response.text
            headers = answer.response.headers
        trace = headers["x-custodes-trace-id"]
        assert item.trace_id == trace
        review = _entry(proxy.ledger, int(headers["x-custodes-ledger-index"]))
        assert (review["step"], review["trace_id"]) == ("review", trace)
        assert review["state"] == {"approve": "approved", "reject": "rejected"}[decision]
        assert review["reviewer"] == "rita"


def _stream(
    client: openai.OpenAI, prompt: str
) -> tuple[list[str], openai.APIError | None, httpx.Headers]:
    pieces: list[str] = []
    stream = client.chat.completions.create(
        model="test-model", messages=_user(prompt), stream=True
    )
    try:
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
    except openai.APIError as exc:
        return pieces, exc, stream.response.headers
    return pieces, None, stream.response.headers


def test_a_long_stream_flows_in_pieces(client: openai.OpenAI, proxy: ProxyHandle) -> None:
    pieces, error, headers = _stream(client, "please write long")
    assert error is None
    assert "".join(pieces) == LONG_REPLY
    assert len(pieces) > 10  # released as it came, not all at the end
    admission = _entry(proxy.ledger, int(headers["x-custodes-ledger-index"]))
    assert (admission["step"], admission["trace_id"]) == ("admission", headers["x-custodes-trace-id"])
    steps = [e["step"] for e in _entries(proxy.ledger, headers["x-custodes-trace-id"])]
    assert sorted(steps) == ["admission", "call", "validation"]


def test_a_secret_split_across_chunks_never_reaches_the_caller(
    client: openai.OpenAI, proxy: ProxyHandle
) -> None:
    pieces, error, headers = _stream(client, "please leak")
    received = "".join(pieces)
    assert error is not None
    assert error.body is not None
    assert error.body["code"] == "custodes_completion_blocked"  # type: ignore[index]
    # What arrived is the reply up to, never into, the secret; and some of it did arrive.
    assert received == LEAK_REPLY[: len(received)]
    assert 0 < len(received) <= LEAK_REPLY.index(SECRET)
    trace = headers["x-custodes-trace-id"]
    validation = [e for e in _entries(proxy.ledger, trace) if e["step"] == "validation"]
    assert [e["action"] for e in validation] == ["block"]
    assert SECRET.encode() not in proxy.ledger.read_bytes()


def test_a_stream_with_personal_data_is_released_redacted(client: openai.OpenAI) -> None:
    pieces, error, _ = _stream(client, "please contact")
    assert error is None
    received = "".join(pieces)
    before, after = CONTACT_REPLY.split(EMAIL)
    assert EMAIL not in received
    assert received.startswith(before)
    assert received.endswith(after)


def test_a_stream_names_its_validation_entry_at_the_end(proxy: ProxyHandle) -> None:
    body = {"model": "test-model", "messages": _user("hello raw stream"), "stream": True}
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    (trailer,) = [line for line in lines if line.startswith(": custodes ")]
    named = json.loads(trailer.removeprefix(": custodes "))
    assert named["trace_id"] == r.headers["x-custodes-trace-id"]
    entry = _entry(proxy.ledger, named["ledger_index"])
    assert (entry["step"], entry["trace_id"]) == ("validation", named["trace_id"])


def test_models_are_passed_through_and_recorded(
    client: openai.OpenAI, proxy: ProxyHandle
) -> None:
    raw = client.models.with_raw_response.list()
    assert [m.id for m in raw.parse().data] == list(MODELS)
    entry = _entry(proxy.ledger, int(raw.headers["x-custodes-ledger-index"]))
    assert (entry["step"], entry["status"]) == ("call", 200)
    assert entry["trace_id"] == raw.headers["x-custodes-trace-id"]


def test_healthz(proxy: ProxyHandle) -> None:
    response = httpx.get(proxy.url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def _samples(proxy: ProxyHandle) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(proxy.url + "/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_move(client: openai.OpenAI, proxy: ProxyHandle) -> None:
    ok = ("custodes_guard_requests_total", (("route", "/v1/chat/completions"), ("status", "200")))
    blocked = ("custodes_guard_verdicts_total", (("action", "block"), ("stage", "admission")))
    before = _samples(proxy)
    client.chat.completions.create(model="test-model", messages=_user("count me"))
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="test-model", messages=_user(f"key {SECRET}"))
    after = _samples(proxy)
    assert after[ok] - before.get(ok, 0.0) == 1
    assert after[blocked] - before.get(blocked, 0.0) == 1
    added = ("custodes_guard_added_latency_seconds_count", ())
    assert after[added] - before.get(added, 0.0) >= 1


def test_the_checks_only_endpoint(proxy: ProxyHandle) -> None:
    url = proxy.url + "/v1/custodes/check"
    refused = httpx.post(url, json={"prompt": f"deploy with {SECRET}"})
    assert refused.status_code == 200
    verdict = refused.json()
    assert (verdict["action"], verdict["allowed"], verdict["stage"]) == ("block", False, "admission")
    assert verdict["rules"] == ["test.secrets"]
    assert verdict["text"] is None
    (finding,) = verdict["findings"]
    assert finding["detector"] == "secret.aws-access-key-id"
    assert finding["preview"] != SECRET
    assert len(finding["preview"]) < len(SECRET)
    assert SECRET not in refused.text
    entry = _entry(proxy.ledger, int(refused.headers["x-custodes-ledger-index"]))
    assert entry["trace_id"] == verdict["trace_id"] == refused.headers["x-custodes-trace-id"]

    redacted = httpx.post(url, json={"completion": CONTACT_REPLY, "trace_id": "my-trace.1"})
    verdict = redacted.json()
    assert (verdict["action"], verdict["allowed"], verdict["trace_id"]) == (
        "redact",
        True,
        "my-trace.1",
    )
    assert EMAIL not in verdict["text"]
    assert EMAIL not in redacted.text
    assert verdict["rules"] == ["test.pii"]
    (finding,) = verdict["findings"]
    assert (finding["detector"], finding["kind"]) == ("pii.email", "pii")
    assert "preview" not in finding  # not even a partial address

    for body in ({}, {"prompt": "a", "completion": "b"}, {"completion": 3}, {"extra": 1}):
        bad = httpx.post(url, json=body)
        assert bad.status_code == 400, body
        assert bad.json()["error"]["type"] == "invalid_request_error"


def test_the_ledger_verifies_after_all_of_it(proxy: ProxyHandle) -> None:
    done = subprocess.run(
        [str(CUSTODES), "ledger", "verify", "--db", str(proxy.ledger)],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
