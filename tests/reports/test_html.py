"""The HTML report carries the JSON report's facts, keeps hostile text as text, and a real
browser (Debian's chromium, headless) renders it without running any script.

The HTML is read back with :mod:`html.parser` into a small tree built here, and every value is
compared with the JSON report's, never with HTML the code under test produced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.baseline import Baseline
from custodes.engine import Decision, Gate, decide
from custodes.findings import Finding, Severity, SourceRef
from custodes.reports import Format, LedgerRef, render
from custodes.reports.html_report import CONTENT_SECURITY_POLICY, OPEN_LIMIT, render_html
from custodes.reports.json_report import render_json
from custodes.subject import Skipped, SkipReason
from custodes.suppress import Notice, Suppressed
from ledgertools import run_cli

# Format-valid but fake: AKIA + 16 base32 characters, not AWS's documented example key.
AWS_KEY = "AKIAQ3EGRXNVPB5OTXQA"
ROOT = hashlib.sha256(b"a tree root").hexdigest()
# Markup that, parsed as markup instead of text, would change the DOM when it runs.
PWN_IMG = "\"><img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
PWN_SCRIPT = "<script>document.body.setAttribute('data-pwned','script')</script>"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


# -- reading HTML back ---------------------------------------------------------------------------


@dataclasses.dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = dataclasses.field(default_factory=list)

    def text(self) -> str:
        """Text as a reader sees it: no style or script bodies."""
        if self.tag in {"style", "script"}:
            return ""
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        return [
            n for n in self.iter()
            if n.tag == tag and all(attrs[k] in (n.attrs.get(k) or "").split() for k in attrs)
        ]

    def find(self, tag: str, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]

    def elements(self) -> list[Node]:
        return [c for c in self.children if isinstance(c, Node)]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.doctype: str | None = None

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert tag not in VOID, f"</{tag}>"
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(text: str, *, strict: bool = True) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    if strict:
        assert builder.doctype is not None
        assert builder.doctype.lower() == "doctype html"
        assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


def table_rows(table: Node) -> list[dict[str, Node]]:
    """A table's body rows as {column header: cell}."""
    head = [th.text() for th in table.find("thead").find_all("th")]
    rows = []
    for tr in table.find("tbody").find_all("tr"):
        cells = [c for c in tr.elements() if c.tag in {"td", "th"}]
        rows.append(dict(zip(head, cells, strict=False)))
    return rows


def facts(dl: Node) -> dict[str, str]:
    items = dl.elements()
    assert [n.tag for n in items] == ["dt", "dd"] * (len(items) // 2)
    return {items[i].text(): items[i + 1].text() for i in range(0, len(items), 2)}


def where(path: str, start: int, end: int) -> str:
    return f"{path}:{start}" + (f"-{end}" if end != start else "")


def leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)
    else:
        yield value


# -- decisions -----------------------------------------------------------------------------------


def _secret(path: str = "src/app.py", line: int = 5, secret: str = AWS_KEY, **kw: Any) -> Finding:
    return Finding(
        kind="secret",
        rule=kw.pop("rule", "secret.aws-access-key-id"),
        severity=kw.pop("severity", Severity.HIGH),
        path=path,
        start_line=line,
        end_line=line,
        message=kw.pop("message", "AWS access key id"),
        match_hash=hashlib.sha256(secret.encode()).hexdigest(),
        preview=kw.pop("preview", secret[:4] + "…" + secret[-3:]),
        controls=kw.pop("controls", ()),
    )


def _provenance(path: str = "lib/agent.ts", message: str = "lines 10-42 match leak") -> Finding:
    return Finding(
        kind="provenance",
        rule="provenance.deny",
        severity=Severity.CRITICAL,
        path=path,
        start_line=10,
        end_line=42,
        message=message,
        match_hash=hashlib.sha256(b"fragment").hexdigest(),
        source=SourceRef("leak-2026", "src/tools/agent.ts", 100, 132),
        similarity=0.97312,
        controls=("owasp-llm:LLM02", "eu-ai-act:art15"),
    )


def _policy(path: str = "src/net.py", message: str = "network call in production code") -> Finding:
    return Finding(
        kind="policy",
        rule="acme.no-network-in-src",
        severity=Severity.MEDIUM,
        path=path,
        start_line=3,
        end_line=4,
        message=message,
        match_hash=hashlib.sha256(b"requests.get(url)").hexdigest(),
        controls=("nist-ai-rmf:MEASURE-2.7",),
    )


def _full_decision() -> Decision:
    """Secret, provenance and policy findings, debt, a suppression, warnings, skipped files."""
    debt = _secret(path="src/old.py", line=2, secret="AKIAQ3EGRXNVPB5OTXQB")
    low = _secret(path="src/app.py", line=9, secret="xoxb-1234", rule="secret.generic",
                  severity=Severity.LOW, message="generic token")
    quiet = _secret(path="tests/fixture.py", line=12, secret="AKIAQ3EGRXNVPB5OTXQC")
    baseline = dataclasses.replace(
        Baseline.of([debt]),
        source=".custodes/baseline.json",
        sha256=hashlib.sha256(b"baseline bytes").hexdigest(),
    )
    return decide(
        [_secret(), low, _provenance(), _policy(), debt],
        [
            Skipped("logo.png", SkipReason.BINARY),
            Skipped("dist/app.min.js", SkipReason.MINIFIED, "average line 3000 characters"),
        ],
        Gate(),
        scanned=12,
        suppressed=[Suppressed(quiet, "fake key of the test suite", 11)],
        warnings=[Notice("src/app.py", 20, "a suppression of secret.x has no reason")],
        baseline=baseline,
    )


def _both(decision: Decision, ledger: LedgerRef | None = None) -> tuple[dict[str, Any], Node]:
    return json.loads(render_json(decision, ledger=ledger)), parse(
        render_html(decision, ledger=ledger)
    )


def _finding_rows(doc: Node) -> list[tuple[str, str, dict[str, Node]]]:
    """(severity section, path heading, row) for every finding row, in document order."""
    out = []
    for section in doc.find("section", id="findings").find_all("section", **{"class": "severity"}):
        severity = section.find("h3").text().split(" ")[0]
        path = None
        for node in section.elements():
            if node.tag == "h4":
                path = node.text()
            elif node.tag == "table":
                assert path is not None
                out.extend((severity, path, row) for row in table_rows(node))
    return out


def _row_by_id(rows: list[dict[str, Node]], finding_id: str) -> dict[str, Node]:
    found = [r for r in rows if f"id {finding_id}" in r["rule"].text()]
    assert len(found) == 1, f"{len(found)} rows for {finding_id}"
    return found[0]


def _assert_finding_facts(item: dict[str, Any], row: dict[str, Node]) -> None:
    assert row["location"].text() == where(item["path"], item["start_line"], item["end_line"])
    rule = row["rule"].text()
    assert item["rule"] in rule
    assert item["kind"] in rule
    assert row["message"].text() == item["message"]
    evidence = row["evidence"].text()
    if "preview" in item:
        assert f"preview {item['preview']}" in evidence
        assert f"sha256 {item['sha256']}" in evidence
    else:
        assert "preview" not in evidence
        assert "sha256" not in evidence
    if "source" in item:
        src = item["source"]
        assert f"collection {src['collection']}" in evidence
        assert f"{src['path']} lines {src['start_line']}-{src['end_line']}" in evidence
    if "similarity" in item:
        assert f"similarity {item['similarity']}" in evidence
    for control in item.get("controls", []):
        assert control in evidence


# -- facts parity --------------------------------------------------------------------------------


def test_every_json_fact_is_in_the_html() -> None:
    report, doc = _both(_full_decision(), LedgerRef(7, ROOT))
    text = doc.text()
    # A sweep first, so a key added to the JSON report later cannot be forgotten here.
    for leaf in leaves(report):
        if isinstance(leaf, str):
            assert leaf in text, f"{leaf!r} is in the JSON report, not in the HTML"
        elif isinstance(leaf, int) and not isinstance(leaf, bool):
            assert str(leaf) in text
        elif isinstance(leaf, float):
            assert f"similarity {leaf}" in text

    header = doc.find("header", id="summary")
    assert "FAILED" in header.find("h1").text()
    assert report["passed"] is False
    assert header.find("p", **{"class": "score"}).text() == f"score {report['score']}/100"
    assert [li.text() for li in header.find_all("li")] == report["reasons"]
    summary = facts(header.find("dl"))
    assert summary["tool"] == f"{report['tool']['name']} {report['tool']['version']}"
    assert summary["files scanned"] == str(report["scanned"])
    assert summary["files not scanned"] == str(len(report["skipped"]))
    assert summary["ledger entry"] == str(report["ledger"]["index"])
    assert summary["ledger root"] == report["ledger"]["root"]
    assert summary["baseline"] == report["baseline"]["path"]
    assert summary["baseline sha256"] == report["baseline"]["sha256"]
    assert summary["baseline findings"] == str(report["baseline"]["findings"])

    rows = _finding_rows(doc)
    assert len(rows) == len(report["findings"]) == 5
    for item in report["findings"]:
        [(severity, path, row)] = [r for r in rows if f"id {item['id']}" in r[2]["rule"].text()]
        assert (severity, path) == (item["severity"], item["path"])
        assert row["state"].text() == item["state"]
        _assert_finding_facts(item, row)
    assert {item["state"] for item in report["findings"]} == {"new", "debt"}

    suppressed = table_rows(doc.find("table", **{"class": "suppressed"}))
    assert len(suppressed) == len(report["suppressed"]) == 1
    for item in report["suppressed"]:
        row = _row_by_id(suppressed, item["id"])
        _assert_finding_facts(item, row)
        assert row["severity"].text() == item["severity"]
        reason = row["reason"].text()
        assert reason.startswith(item["suppression"]["reason"])
        assert reason.endswith(f"directive on line {item['suppression']['line']}")

    warnings = table_rows(doc.find("table", **{"class": "warnings"}))
    assert [(r["path"].text(), int(r["line"].text()), r["message"].text()) for r in warnings] == [
        (w["path"], w["line"], w["message"]) for w in report["warnings"]
    ]
    skipped = table_rows(doc.find("table", **{"class": "skipped"}))
    assert [(r["path"].text(), r["reason"].text(), r["detail"].text()) for r in skipped] == [
        (s["path"], s["reason"], s.get("detail", "")) for s in report["skipped"]
    ]


def test_the_scorecard_table_holds_the_json_scorecard() -> None:
    report, doc = _both(_full_decision())
    card = report["scorecard"]
    section = doc.find("section", id="scorecard")
    table = {
        r[""].text(): {k: v.text() for k, v in r.items()}
        for r in table_rows(section.find("table"))
    }
    assert list(table) == ["violations", "debt", "drift", "suppressed"]
    assert card["drift"] is not None  # measured against the baseline
    for part in ("violations", "debt", "drift"):
        expected = {"count": card[part]["count"], "weight": card[part]["weight"]}
        expected |= card[part]["by_kind"] | card[part]["by_severity"]
        assert {k: int(v) for k, v in table[part].items() if k in expected} == expected, part
        assert set(expected) <= set(table[part])
    assert table["suppressed"]["count"] == str(card["suppressed"])
    parts = facts(section.find("dl"))
    assert parts["score"] == str(card["score"]) == str(report["score"])
    assert parts["gate score (violations only)"] == str(card["violations"]["score"])
    assert parts["debt penalty (⌊weight ÷ 4⌋)"] == str(card["debt"]["penalty"])
    assert parts["drift measured against"] == card["drift"]["against"]
    # The formula with the numbers the JSON report gives.
    assert (
        section.find("p", **{"class": "formula"}).text()
        == f"score = max(0, 100 − {card['violations']['weight']} − "
        f"⌊{card['debt']['weight']} ÷ 4⌋) = {card['score']}"
    )


def test_a_clean_run_without_ledger_or_baseline() -> None:
    report, doc = _both(decide([], [], Gate(), scanned=3))
    assert report["passed"] is True
    header = doc.find("header", id="summary")
    assert "PASSED" in header.find("h1").text()
    summary = facts(header.find("dl"))
    assert summary["ledger entry"] == "not recorded"
    assert summary["baseline"] == "none"
    assert "No findings." in doc.find("section", id="findings").text()
    table = {r[""].text(): r for r in table_rows(doc.find("table", **{"class": "scorecard"}))}
    assert table["drift"]["count"].text() == "not measured"
    # Empty lists have no section at all.
    assert not [s for s in doc.find_all("section") if s.attrs.get("id") in
                {"suppressed", "warnings", "skipped"}]


def test_findings_are_grouped_by_severity_then_path() -> None:
    findings = [
        _secret(path="b.py", line=1, secret="k1", severity=Severity.LOW),
        _secret(path="a.py", line=7, secret="k2", severity=Severity.CRITICAL),
        _secret(path="c.py", line=1, secret="k3", severity=Severity.MEDIUM),
        _secret(path="a.py", line=3, secret="k4", severity=Severity.LOW),
        _secret(path="b.py", line=1, secret="k5", severity=Severity.INFO),
        _secret(path="a.py", line=2, secret="k6", severity=Severity.CRITICAL),
    ]
    report, doc = _both(decide(findings, [], Gate()))
    rank = {s.value: s.rank for s in Severity}
    expected = sorted(
        ((f["severity"], f["path"], f["start_line"]) for f in report["findings"]),
        key=lambda t: (-rank[t[0]], t[1], t[2]),
    )
    got = [(sev, path, int(row["location"].text().rsplit(":", 1)[1]))
           for sev, path, row in _finding_rows(doc)]
    assert got == expected
    headings = [h.text() for h in doc.find("section", id="findings").find_all("h3")]
    assert headings == ["critical (2)", "medium (1)", "low (2)", "info (1)"]


def test_long_lists_start_collapsed() -> None:
    few = decide([], [Skipped(f"f{i}.bin", SkipReason.BINARY) for i in range(OPEN_LIMIT)], Gate())
    many = decide(
        [], [Skipped(f"f{i}.bin", SkipReason.BINARY) for i in range(OPEN_LIMIT + 1)], Gate()
    )
    for decision, opened in ((few, True), (many, False)):
        details = parse(render_html(decision, ledger=None)).find("section", id="skipped").find(
            "details"
        )
        assert ("open" in details.attrs) is opened
        assert len(table_rows(details.find("table"))) == len(decision.skipped)


def test_self_contained_with_a_strict_policy() -> None:
    doc = parse(render_html(_full_decision(), ledger=LedgerRef(1, ROOT)))
    [csp] = [
        m for m in doc.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp.attrs["content"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert csp.attrs["content"] == CONTENT_SECURITY_POLICY
    assert doc.find("meta", charset="utf-8") is not None
    tags = {n.tag for n in doc.iter()}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "form", "base"}
    for node in doc.iter():
        for name in node.attrs:
            assert name not in {"src", "href", "srcset", "action", "style"}, node.tag
            assert not name.startswith("on"), f"<{node.tag} {name}>"
    style = "".join(c for s in doc.find_all("style") for c in s.children if isinstance(c, str))
    assert "url(" not in style
    assert "@import" not in style
    assert AWS_KEY not in render_html(_full_decision(), ledger=None)


def test_render_dispatches_html() -> None:
    decision = _full_decision()
    assert Format("html") is Format.HTML
    assert render(decision, Format.HTML, ledger=None) == render_html(decision, ledger=None)


# -- escaping ------------------------------------------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    PWN_IMG,
    PWN_SCRIPT,
    "&amp; &lt;b&gt; &#60;i&#62;",
    "</td></tr></table></style><!-- -->",
    "' onmouseover='alert(1)",
]


def _hostile_decision(values: list[str]) -> Decision:
    a, b, c, d, e, f = (values * 6)[:6]
    finding = _secret(path=f"src/{a}.py", message=b, preview=c)
    return decide(
        [finding, _provenance(path=f"lib/{d}.ts", message=e), _policy(message=f)],
        [Skipped(f"{a}.png", SkipReason.BINARY, b)],
        Gate(),
        suppressed=[Suppressed(_secret(path=f"{c}.py", secret="other"), d, 4)],
        warnings=[Notice(f"{e}.py", 9, f)],
    )


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_stays_text(hostile: str) -> None:
    decision = _hostile_decision([hostile])
    raw = render_html(decision, ledger=None)
    doc = parse(raw)
    benign = parse(render_html(_hostile_decision(["x"]), ledger=None))
    assert [n.tag for n in doc.iter()] == [n.tag for n in benign.iter()]
    assert "<script" not in raw.lower()
    assert "<img" not in raw.lower()
    report = json.loads(render_json(decision, ledger=None))
    rows = _finding_rows(doc)
    for item in report["findings"]:
        [(_, path, row)] = [r for r in rows if f"id {item['id']}" in r[2]["rule"].text()]
        assert path == item["path"]
        _assert_finding_facts(item, row)
    text = doc.text()
    for leaf in leaves(report):
        if isinstance(leaf, str):
            assert leaf in text


def test_an_entity_in_a_path_is_shown_as_written() -> None:
    raw = render_html(_hostile_decision(["a&amp;b"]), ledger=None)
    assert "a&amp;amp;b" in raw
    assert "a&amp;b" in parse(raw).text()


def test_control_and_bidi_characters_are_shown_escaped() -> None:
    path = "src/\x1b[31mred\u202eyp.evil\u2066.py"
    doc = parse(render_html(decide([_secret(path=path)], [], Gate()), ledger=None))
    (_, heading, row) = _finding_rows(doc)[0]
    assert heading == "src/\\x1b[31mred\\u202eyp.evil\\u2066.py"
    assert row["location"].text() == heading + ":5"
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]", doc.text())


# Every character but controls, surrogates and the bidi controls the report shows escaped.
# Mixed with markup fragments, so the examples are not mostly harmless letters.
_TEXT = st.lists(
    st.one_of(
        st.text(
            st.characters(
                blacklist_categories=("Cc", "Cs"),
                blacklist_characters="\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                "\u2066\u2067\u2068\u2069",
            ),
            min_size=1,
            max_size=12,
        ),
        st.sampled_from(["<", ">", "&", '"', "'", "<b>", "</td>", "&amp;", "&#60;", "<!--", "]]>"]),
    ),
    min_size=1,
    max_size=6,
).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TEXT, min_size=6, max_size=6))
def test_any_text_keeps_the_document_shape(values: list[str]) -> None:
    decision = _hostile_decision(values)
    doc = parse(render_html(decision, ledger=None))
    benign = parse(render_html(_hostile_decision(["x"] * 6), ledger=None))
    assert [n.tag for n in doc.iter()] == [n.tag for n in benign.iter()]
    report = json.loads(render_json(decision, ledger=None))
    rows = _finding_rows(doc)
    for item in report["findings"]:
        [(_, path, row)] = [r for r in rows if f"id {item['id']}" in r[2]["rule"].text()]
        assert path == item["path"]
        _assert_finding_facts(item, row)
    [supp] = table_rows(doc.find("table", **{"class": "suppressed"}))
    assert supp["reason"].text() == f"{values[3]}directive on line 4"
    [warn] = table_rows(doc.find("table", **{"class": "warnings"}))
    assert (warn["path"].text(), warn["message"].text()) == (f"{values[4]}.py", values[5])
    [skip] = table_rows(doc.find("table", **{"class": "skipped"}))
    assert (skip["path"].text(), skip["detail"].text()) == (f"{values[0]}.png", values[1])


# -- a real browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "chromium was not found on PATH: install Debian's chromium package "
        "(DEBIAN_FRONTEND=noninteractive apt-get install -y chromium); CI installs it"
    )


def _chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _dom(chromium: str, page: Path) -> Node:
    done = _chromium(chromium, page.parent / "profile", "--dump-dom", page.as_uri())
    assert "<body" in done.stdout, done.stderr[-3000:]
    return parse(done.stdout, strict=False)


def _pwned(dom: Node) -> bool:
    return any("data-pwned" in n.attrs for n in dom.iter())


def test_the_browser_shows_hostile_names_as_text_and_runs_nothing(
    chromium: str, tmp_path: Path
) -> None:
    decision = _hostile_decision([PWN_IMG, PWN_SCRIPT, "<b>bold</b>"])
    page = tmp_path / "report.html"
    page.write_text(render_html(decision, ledger=LedgerRef(3, ROOT)), encoding="utf-8")
    dom = _dom(chromium, page)
    assert not _pwned(dom)
    assert not {"script", "img", "b"} & {n.tag for n in dom.iter()}
    body = dom.find("body").text()
    assert "FAILED" in body
    for f in decision.findings:
        assert where(f.path, f.start_line, f.end_line) in body
        assert f.rule in body
        assert f.message in body
    assert ROOT in body


def test_the_policy_stops_a_script_that_got_in(chromium: str, tmp_path: Path) -> None:
    """A control: the browser does run injected markup, and the page's CSP is what stops it."""
    report = render_html(_full_decision(), ledger=None)
    injected = report.replace("<body>", "<body>" + PWN_IMG.removeprefix('">') + PWN_SCRIPT, 1)
    without_policy = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", injected)
    assert without_policy != injected
    for name, text, runs in (("csp", injected, False), ("none", without_policy, True)):
        page = tmp_path / name / "report.html"
        page.parent.mkdir()
        page.write_text(text, encoding="utf-8")
        assert _pwned(_dom(chromium, page)) is runs, name


def test_scan_cli_writes_an_html_report_a_browser_renders(
    chromium: str, tmp_path: Path
) -> None:
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "app.py").write_text(f'KEY_ID = "{AWS_KEY}"\n')
    hostile = "\"><img src=x onerror=\"document.body.setAttribute('data-pwned',1)\">.py"
    (proj / hostile).write_text(f'OTHER = "{AWS_KEY[:-1]}B"\n')
    (proj / "clean.py").write_text("print('hello')\n")
    (proj / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))

    done = run_cli("scan", "proj", "--format", "html", "--output", "r.html", "--no-ledger",
                   cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "report written to r.html" in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / ".custodes").exists()
    raw = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert AWS_KEY not in raw
    assert AWS_KEY not in done.stderr

    as_json = run_cli("scan", "proj", "--format", "json", "--no-ledger", cwd=tmp_path)
    assert as_json.returncode == 1, as_json.stderr
    report = json.loads(as_json.stdout)
    assert {f["path"] for f in report["findings"]} == {"src/app.py", hostile}

    dom = _dom(chromium, tmp_path / "r.html")
    assert not _pwned(dom)
    assert not dom.find_all("img")
    body = dom.find("body").text()
    assert "FAILED" in body
    for item in report["findings"]:
        assert where(item["path"], item["start_line"], item["end_line"]) in body
        assert item["id"] in body
        assert item["preview"] in body
        assert item["sha256"] in body
    assert [s["path"] for s in report["skipped"]] == ["logo.png"]
    assert "logo.png" in body

    pdf = tmp_path / "r.pdf"
    _chromium(chromium, tmp_path / "profile", f"--print-to-pdf={pdf}", "--no-pdf-header-footer",
              (tmp_path / "r.html").as_uri())
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) >= 1
