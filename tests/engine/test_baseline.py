"""The baseline file: deterministic, sorted, identities only; a malformed one names its line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.baseline import Baseline
from custodes.errors import MalformedBaseline, UsageError
from custodes.findings import Finding, Severity


def _f(rule: str, path: str, value: str, line: int = 1) -> Finding:
    return Finding(
        "secret",
        rule,
        Severity.HIGH,
        path,
        line,
        line,
        "m",
        hashlib.sha256(value.encode()).hexdigest(),
        preview="tok_…" + value[-2:],
    )


def _id(rule: str, path: str, value: str) -> str:
    # The identity as findings.py documents it, restated: sha256(rule NUL path NUL hash).
    match = hashlib.sha256(value.encode()).hexdigest()
    return hashlib.sha256(f"{rule}\0{path}\0{match}".encode()).hexdigest()


def test_the_file_is_sorted_one_finding_a_line_and_holds_no_text(tmp_path: Path) -> None:
    findings = [
        _f("secret.b", "z.py", "value-one", line=90),
        _f("secret.a", "a.py", "value-two", line=4),
        _f("secret.b", "a.py", "value-three", line=2),
    ]
    baseline = Baseline.of(findings, created="2026-03-31T09:00:00Z")
    out = tmp_path / "sub" / "baseline.json"
    baseline.write(out, tool="custodes 0.1.0")
    text = out.read_text()
    rows = [
        ("a.py", "secret.a", "value-two"),
        ("a.py", "secret.b", "value-three"),
        ("z.py", "secret.b", "value-one"),
    ]
    expected = (
        "{\n"
        '  "version": 1,\n'
        '  "tool": "custodes 0.1.0",\n'
        '  "created": "2026-03-31T09:00:00Z",\n'
        '  "findings": [\n'
        + ",\n".join(
            f'    {{"id": "{_id(rule, path, value)}", "kind": "secret", "path": "{path}", '
            f'"rule": "{rule}", "severity": "high"}}'
            for path, rule, value in rows
        )
        + "\n  ]\n}\n"
    )
    assert text == expected
    assert "value" not in text.replace('"severity"', "")  # no secret, no preview
    assert "tok_" not in text
    assert "line" not in text  # no line numbers
    loaded = Baseline.load(out)
    assert set(loaded.entries) == {f.id for f in findings}
    assert loaded.created == "2026-03-31T09:00:00Z"
    assert loaded.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert loaded.source == str(out)


def test_an_empty_baseline_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    Baseline.of([], created="2026-01-01T00:00:00Z").write(out, tool="custodes 0.1.0")
    assert json.loads(out.read_text())["findings"] == []
    assert len(Baseline.load(out)) == 0


def test_source_date_epoch_pins_created(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1774915200")  # 2026-03-31T00:00:00Z
    assert Baseline.of([]).created == "2026-03-31T00:00:00Z"


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["secret.a", "secret.b", "policy.c"]),
            st.text(min_size=1, max_size=20),
            st.text(min_size=1, max_size=20),
        ),
        max_size=15,
    )
)
def test_any_findings_round_trip_in_any_order(items: list[tuple[str, str, str]]) -> None:
    findings = [_f(rule, path, value) for rule, path, value in items]
    a = Baseline.of(findings, created="2026-03-31T00:00:00Z").dumps(tool="t")
    b = Baseline.of(reversed(findings), created="2026-03-31T00:00:00Z").dumps(tool="t")
    assert a == b
    assert {row["id"] for row in json.loads(a)["findings"]} == {
        _id(rule, path, value) for rule, path, value in items
    }


GOOD_ID = "a" * 64
ROW = f'{{"id": "{GOOD_ID}", "kind": "secret", "path": "a.py", "rule": "secret.a", "severity": "high"}}'


def _doc(*rows: str, version: str = "1", created: str = '"2026-03-31T00:00:00Z"') -> str:
    return (
        "{\n"
        f'  "version": {version},\n'
        '  "tool": "custodes 0.1.0",\n'
        f'  "created": {created},\n'
        '  "findings": [\n    ' + ",\n    ".join(rows) + "\n  ]\n}\n"
    )


@pytest.mark.parametrize(
    ("case", "text", "where"),
    [
        ("not-json", _doc(ROW, ROW.replace('"kind"', "'kind'")), ":7: not JSON"),
        ("bad-id-on-its-line", _doc(ROW, ROW, ROW.replace(GOOD_ID, "xyz")), ":8: findings.2.id"),
        ("bad-severity", _doc(ROW, ROW.replace('"high"', '"severe"')), ":7: findings.1.severity"),
        ("missing-rule", _doc(ROW.replace('"rule": "secret.a", ', "")), ":6: findings.0.rule"),
        ("wrong-version", _doc(ROW, version="2"), ":2: version"),
        ("bad-created", _doc(ROW, created='"yesterday"'), ":4: created"),
        ("not-an-object", "[]\n", ":1: "),
        ("not-utf8", '{"version": 1,\n"x": "\xff"}', ":2: not UTF-8"),
    ],
)
def test_a_malformed_baseline_names_the_file_and_line(
    tmp_path: Path, case: str, text: str, where: str
) -> None:
    path = tmp_path / f"{case}.json"
    data = text.encode("latin-1") if case == "not-utf8" else text.encode()
    path.write_bytes(data)
    with pytest.raises(MalformedBaseline) as caught:
        Baseline.load(path)
    assert isinstance(caught.value, UsageError)
    assert caught.value.message.startswith(f"{path}{where}"), caught.value.message
    assert "custodes baseline create" in caught.value.diagnostics()


def test_a_missing_or_unreadable_baseline(tmp_path: Path) -> None:
    with pytest.raises(MalformedBaseline, match="no baseline at"):
        Baseline.load(tmp_path / "nope.json")
    with pytest.raises(MalformedBaseline, match="cannot read the baseline"):
        Baseline.load(tmp_path)
