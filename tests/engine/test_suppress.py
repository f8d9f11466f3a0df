"""Inline suppressions, read by the engine from each subject's own text, with the real detector.

Credentials are generated from a seeded RNG (format-valid, not real); the expected outcome of
every case is written down from the documented rule: a directive with a reason silences the
rules it names on its own line and, when alone on its line, on the line below.
"""

from __future__ import annotations

import io
import json
import random
import string
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.detectors.secrets_detector import SecretsDetector
from custodes.engine import Decision, Gate, run
from custodes.reports import Format, render
from custodes.sources import walk
from custodes.subject import Subject, SubjectKind
from custodes.suppress import MAX_REASON_CHARS, Suppressions

AWS = "secret.aws-access-key-id"
B32 = string.ascii_uppercase + "234567"
_RNG = random.Random(20260331)


def aws_key(rng: random.Random = _RNG) -> str:
    return "AKIA" + "".join(rng.choice(B32) for _ in range(16))


def _run(text: str, path: str = "app.py", **subject: object) -> Decision:
    return run([Subject(path, text, **subject)], [SecretsDetector()], Gate())  # type: ignore[arg-type]


def _lines(decision: Decision) -> list[int]:
    return [f.start_line for f in decision.findings]


# One case per comment style: (file name, a line holding the key and a trailing directive with
# {reason}, a line holding only the directive, then the key on the next line).
STYLES = {
    "python": ("app.py", 'k = "{key}"  # custodes: ignore[{rule}]{reason}', "# custodes: ignore[{rule}]{reason}", 'k = "{key}"'),
    "javascript": ("app.js", 'const k = "{key}"; // custodes: ignore[{rule}]{reason}', "  // custodes: ignore[{rule}]{reason}", 'const k = "{key}";'),
    "c-block": ("app.ts", 'const k = "{key}"; /* custodes: ignore[{rule}]{reason} */', "/* custodes: ignore[{rule}]{reason} */", 'let k = "{key}";'),
    "shell": ("deploy.sh", 'export KEY="{key}"  # custodes: ignore[{rule}]{reason}', "# custodes: ignore[{rule}]{reason}", 'export KEY="{key}"'),
    "yaml": ("ci.yaml", "key: {key}  # custodes: ignore[{rule}]{reason}", "  # custodes: ignore[{rule}]{reason}", "  key: {key}"),
    "sql": ("seed.sql", "INSERT INTO k VALUES ('{key}'); -- custodes: ignore[{rule}]{reason}", "-- custodes: ignore[{rule}]{reason}", "INSERT INTO k VALUES ('{key}');"),
    "html": ("index.html", '<meta content="{key}"> <!-- custodes: ignore[{rule}]{reason} -->', "<!-- custodes: ignore[{rule}]{reason} -->", '<meta content="{key}">'),
    "ini": ("app.ini", "key = {key} ; custodes: ignore[{rule}]{reason}", "; custodes: ignore[{rule}]{reason}", "key = {key}"),
}  # fmt: skip


@pytest.mark.parametrize("style", sorted(STYLES))
def test_a_directive_with_a_reason_suppresses_in_every_comment_style(style: str) -> None:
    name, trailing, alone, code = STYLES[style]
    k1, k2, k3 = aws_key(), aws_key(), aws_key()
    text = "\n".join(
        [
            trailing.format(key=k1, rule=AWS, reason=" fixture key, never deployed"),
            "",
            alone.format(rule=AWS, reason=": rotated in 2024, kept for the migration test"),
            code.format(key=k2),
            code.format(key=k3),  # two lines below the directive: not covered
        ]
    )
    decision = _run(text, name)
    assert _lines(decision) == [5]
    assert [(s.finding.start_line, s.line, s.reason) for s in decision.suppressed] == [
        (1, 1, "fixture key, never deployed"),
        (4, 3, "rotated in 2024, kept for the migration test"),
    ]
    assert decision.warnings == ()
    assert decision.score == 75  # the suppressed findings count for nothing
    assert not decision.passed  # the one left is high


@pytest.mark.parametrize("style", sorted(STYLES))
def test_a_directive_without_a_reason_does_not_suppress_and_warns(style: str) -> None:
    name, trailing, alone, code = STYLES[style]
    text = "\n".join(
        [
            trailing.format(key=aws_key(), rule=AWS, reason=""),
            alone.format(rule=AWS, reason="  "),
            code.format(key=aws_key()),
        ]
    )
    decision = _run(text, name)
    assert _lines(decision) == [1, 3]
    assert decision.suppressed == ()
    assert [(w.path, w.line) for w in decision.warnings] == [(name, 1), (name, 2)]
    for warning in decision.warnings:
        assert "no reason" in warning.message
        assert f"ignore[{AWS}] why this is safe" in warning.message  # the fix, spelled out


def test_only_the_named_rules_are_suppressed_and_several_can_be_named() -> None:
    key = aws_key()
    other = aws_key()
    text = (
        f'a = "{key}"  # custodes: ignore[secret.github-personal-access-token] not this one\n'
        f'b = "{other}"  # custodes: ignore[secret.github-personal-access-token, {AWS}] both\n'
    )
    decision = _run(text)
    assert _lines(decision) == [1]
    ((suppressed),) = decision.suppressed
    assert (suppressed.finding.start_line, suppressed.reason) == (2, "both")


def test_a_wildcard_is_refused() -> None:
    text = f'a = "{aws_key()}"  # custodes: ignore[*] everything here is fake\n'
    decision = _run(text)
    assert _lines(decision) == [1]
    (warning,) = decision.warnings
    assert warning.line == 1
    assert "ignore[*] is not accepted" in warning.message


def test_a_directive_after_code_covers_only_its_own_line() -> None:
    text = f'x = 1  # custodes: ignore[{AWS}] about x, not the next line\nk = "{aws_key()}"\n'
    assert _lines(_run(text)) == [2]


def test_a_mention_outside_a_comment_is_not_a_directive() -> None:
    text = f'help = "write custodes: ignore[{AWS}] reason"; k = "{aws_key()}"\n'
    decision = _run(text)
    assert _lines(decision) == [1]
    assert decision.warnings == ()


def test_a_reason_holding_a_credential_is_refused_and_never_quoted() -> None:
    key = aws_key()
    text = f'k = "{key}"  # custodes: ignore[{AWS}] same as {aws_key()} in prod\n'
    decision = _run(text)
    assert len(decision.findings) == 2  # neither is suppressed
    (warning,) = decision.warnings
    assert "holds a credential" in warning.message
    for fmt in Format:
        report = render(decision, fmt, ledger=None)
        assert "AKIA" + key[4:] not in report
        assert " in prod" not in report


def test_a_long_reason_is_cut() -> None:
    text = f'k = "{aws_key()}"  # custodes: ignore[{AWS}] {"why " * 100}\n'
    (suppressed,) = _run(text).suppressed
    assert len(suppressed.reason) == MAX_REASON_CHARS
    assert suppressed.reason.endswith("…")


def test_hunk_lines_are_the_originals() -> None:
    # A hunk's added lines 10, 11 and 40: the directive on 10 covers 11, not 40.
    text = f'# custodes: ignore[{AWS}] moved from config\nk = "{aws_key()}"\nj = "{aws_key()}"'
    decision = _run(text, kind=SubjectKind.HUNK, line_numbers=(10, 11, 40))
    assert _lines(decision) == [40]
    assert [(s.finding.start_line, s.line) for s in decision.suppressed] == [(11, 10)]


def test_an_identity_stays_live_if_any_occurrence_is_not_covered() -> None:
    key = aws_key()
    text = f'a = "{key}"  # custodes: ignore[{AWS}] test\nb = "{key}"\n'
    decision = _run(text)
    assert len(decision.findings) == 1
    assert decision.suppressed == ()


def test_archive_members_and_source_map_sources_are_suppressed_the_same_way(
    tmp_path: Path,
) -> None:
    covered = f'// custodes: ignore[{AWS}] sample credential of the SDK docs\nk = "{aws_key()}";\n'
    open_key = aws_key()
    source_map = json.dumps(
        {
            "version": 3,
            "sources": ["src/a.ts", "src/b.ts"],
            "sourcesContent": [covered, f'const k = "{open_key}";\n'],
            "mappings": "",
        }
    ).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (
            ("package/dist/cli.js.map", source_map),
            ("package/lib/c.js", covered.encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "pkg.tgz").write_bytes(buffer.getvalue())
    decision = run(walk(tmp_path), [SecretsDetector()], Gate())
    assert [f.path for f in decision.findings] == ["pkg.tgz!package/dist/cli.js.map!src/b.ts"]
    assert sorted((s.finding.path, s.finding.start_line) for s in decision.suppressed) == [
        ("pkg.tgz!package/dist/cli.js.map!src/a.ts", 2),
        ("pkg.tgz!package/lib/c.js", 2),
    ]


def test_a_text_without_the_marker_has_no_directives() -> None:
    assert Suppressions.of(Subject("a.py", "x = 1\n" * 1000)) == Suppressions("a.py")


# Each line of a generated file is one of these; the reference below decides from the kinds
# alone which secret lines are covered.
_KINDS = ("code", "key", "key+why", "key+bare", "why", "bare", "why-other")


def _render(kind: str, rng: random.Random) -> str:
    return {
        "code": "x = 1",
        "key": f'k = "{aws_key(rng)}"',
        "key+why": f'k = "{aws_key(rng)}"  # custodes: ignore[{AWS}] a fixture',
        "key+bare": f'k = "{aws_key(rng)}"  # custodes: ignore[{AWS}]',
        "why": f"    # custodes: ignore[{AWS}] a fixture",
        "bare": f"# custodes: ignore[{AWS}]",
        "why-other": "# custodes: ignore[secret.slack-bot-token] another rule",
    }[kind]


@settings(max_examples=60, deadline=None)
@given(kinds=st.lists(st.sampled_from(_KINDS), min_size=1, max_size=30), seed=st.integers())
def test_suppression_matches_the_documented_rule(kinds: list[str], seed: int) -> None:
    rng = random.Random(seed)
    text = "\n".join(_render(kind, rng) for kind in kinds)
    decision = _run(text)
    expected_live, expected_quiet, expected_warned = [], [], []
    for number, kind in enumerate(kinds, start=1):
        if kind in ("key+bare", "bare"):
            expected_warned.append(number)
        if not kind.startswith("key"):
            continue
        above = kinds[number - 2] if number > 1 else None
        if kind == "key+why" or above == "why":
            expected_quiet.append(number)
        else:
            expected_live.append(number)
    assert _lines(decision) == expected_live
    assert sorted(s.finding.start_line for s in decision.suppressed) == expected_quiet
    assert [w.line for w in decision.warnings] == expected_warned
