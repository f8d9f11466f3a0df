"""Source maps: embedded sources become subjects; bad maps become records, never exceptions."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custodes.sources import inline_source_map, read_source_map
from custodes.sources.sourcemap import has_inline_source_map, normalise_source_name
from custodes.subject import Skipped, SkipReason, Subject, SubjectKind

AGENT_TS = (
    "import { run } from './run';\n\nexport function agent(): void {\n  run('secret plan');\n}\n"
)


def _map(**fields: object) -> str:
    return json.dumps({"version": 3, "mappings": "AAAA", "names": [], **fields})


def _subjects(items: list[Subject | Skipped]) -> dict[str, Subject]:
    return {item.path: item for item in items if isinstance(item, Subject)}


def _skipped(items: list[Subject | Skipped]) -> list[Skipped]:
    return [item for item in items if isinstance(item, Skipped)]


def test_embedded_sources_become_subjects_named_after_the_map() -> None:
    text = _map(
        sources=["webpack:///./src/tools/agent.ts", "webpack:///./src/empty.py", "lib/no.js"],
        sourcesContent=[AGENT_TS, "", None],
    )
    items = list(read_source_map(text, "dist/cli.js.map"))
    assert _skipped(items) == []
    subjects = _subjects(items)
    # The source without content (None) is not a subject; the empty one is.
    assert sorted(subjects) == [
        "dist/cli.js.map!src/empty.py",
        "dist/cli.js.map!src/tools/agent.ts",
    ]
    agent = subjects["dist/cli.js.map!src/tools/agent.ts"]
    assert agent.text == AGENT_TS
    assert agent.kind is SubjectKind.SOURCE
    assert agent.language == "typescript"
    assert subjects["dist/cli.js.map!src/empty.py"].language == "python"
    # Line 4 of the subject is line 4 of the original source.
    assert agent.text.splitlines()[3] == "  run('secret plan');"
    assert agent.original_line(4) == 4


def test_a_map_without_sources_content_yields_nothing() -> None:
    assert list(read_source_map(_map(sources=["a.ts"]), "a.js.map")) == []


def test_source_root_is_applied() -> None:
    text = _map(sourceRoot="webpack:///app/", sources=["./src/a.ts"], sourcesContent=["x"])
    assert list(_subjects(list(read_source_map(text, "m.map")))) == ["m.map!app/src/a.ts"]


def test_unnamed_sources_get_a_positional_name() -> None:
    text = _map(sources=[None, "webpack://"], sourcesContent=["a", "b"])
    assert sorted(_subjects(list(read_source_map(text, "m.map")))) == [
        "m.map!source-0",
        "m.map!source-1",
    ]


def test_indexed_map_sections_are_read() -> None:
    text = json.dumps(
        {
            "version": 3,
            "sections": [
                {
                    "offset": {"line": 0, "column": 0},
                    "map": json.loads(_map(sources=["a.ts"], sourcesContent=["A"])),
                },
                {"offset": {"line": 9, "column": 0}, "url": "elsewhere.map"},
                {
                    "offset": {"line": 20, "column": 0},
                    "map": json.loads(_map(sources=["b/c.rs"], sourcesContent=["C"])),
                },
            ],
        }
    )
    subjects = _subjects(list(read_source_map(text, "i.map")))
    assert {path: s.text for path, s in subjects.items()} == {
        "i.map!a.ts": "A",
        "i.map!b/c.rs": "C",
    }
    assert subjects["i.map!b/c.rs"].language == "rust"


def test_the_xssi_guard_line_is_skipped() -> None:
    text = ")]}'\n" + _map(sources=["a.ts"], sourcesContent=["A"])
    assert list(_subjects(list(read_source_map(text, "m.map")))) == ["m.map!a.ts"]


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "not a JSON object"),
        ("[" * 100_000, "nested too deeply"),
        (_map(sources="a.ts", sourcesContent=["x"]), "'sources'"),
        (_map(sourcesContent=["x"]), "'sources'"),
        (_map(sources=["a.ts"], sourcesContent="x"), "'sourcesContent'"),
        (json.dumps({"sections": {"map": {}}}), "'sections'"),
        (json.dumps({"sections": [{"map": 3}]}), "sections[0]"),
        (json.dumps({"sections": ["x"]}), "sections[0]"),
    ],
)
def test_malformed_maps_are_reported_not_raised(text: str, detail: str) -> None:
    items = list(read_source_map(text, "bad.map"))
    assert len(items) == 1
    (record,) = items
    assert isinstance(record, Skipped)
    assert record.reason is SkipReason.CORRUPT_ARCHIVE
    assert record.path == "bad.map"
    assert record.detail.startswith("source map: ")
    assert detail in record.detail


def test_a_bad_entry_is_reported_and_the_others_still_read() -> None:
    text = _map(sources=["a.ts", 7, "c.ts"], sourcesContent=["A", "B", {"no": 1}], sourceRoot=5)
    items = list(read_source_map(text, "m.map"))
    assert list(_subjects(items)) == ["m.map!a.ts"]
    skipped = _skipped(items)
    assert [s.path for s in skipped] == ["m.map", "m.map!source-1", "m.map!source-2"]
    assert all(s.reason is SkipReason.CORRUPT_ARCHIVE for s in skipped)


def test_nesting_of_sections_is_bounded() -> None:
    document: dict[str, object] = json.loads(_map(sources=["deep.ts"], sourcesContent=["D"]))
    for _ in range(20):
        document = {"sections": [{"offset": {"line": 0, "column": 0}, "map": document}]}
    items = list(read_source_map(json.dumps(document), "m.map"))
    assert [type(item) for item in items] == [Skipped]


@pytest.mark.parametrize(
    ("name", "root", "expected"),
    [
        ("webpack:///./src/a.ts", "", "src/a.ts"),
        ("webpack://my-app/./src/a.ts", "", "my-app/src/a.ts"),
        ("webpack:///src/App.vue?5a3b", "", "src/App.vue"),
        ("file:///home/dev/proj/a.py", "", "home/dev/proj/a.py"),
        ("file:///C:/proj/a.cs", "", "proj/a.cs"),
        ("C:\\proj\\src\\a.cs", "", "proj/src/a.cs"),
        ("./a/./b/../c.js", "", "a/c.js"),
        ("../../../etc/passwd", "", "etc/passwd"),
        ("a/../../b", "", "b"),
        ("x/../C:/y", "", "y"),
        ("/abs/a.go", "", "abs/a.go"),
        ("a.ts", "src", "src/a.ts"),
        ("a.ts", "webpack:///", "a.ts"),
        ("webpack:///a.ts", "ignored/", "a.ts"),
        ("..", "", ""),
    ],
)
def test_normalise_source_name(name: str, root: str, expected: str) -> None:
    assert normalise_source_name(name, root) == expected


_NAME_PARTS = st.sampled_from(
    ["..", ".", "", "a", "b.ts", "C:", "c:", "\\", "/", "webpack://", "file:///", "?q", "#f", "x y"]
)


@given(
    st.lists(st.one_of(_NAME_PARTS, st.text(max_size=6)), max_size=10).map("/".join),
    st.one_of(st.just(""), st.lists(_NAME_PARTS, max_size=4).map("/".join)),
)
def test_normalised_names_stay_relative_and_inside(name: str, root: str) -> None:
    normal = normalise_source_name(name, root)
    assert not normal.startswith("/")
    assert "\\" not in normal
    if normal:
        segments = normal.split("/")
        assert all(segment not in ("", ".", "..") for segment in segments), segments
        assert not (
            len(normal) >= 2 and normal[1] == ":" and normal[0].isascii() and normal[0].isalpha()
        )
    # Normalising is a fixed point: a second pass changes nothing.
    assert normalise_source_name(normal) == normal


def _inline(document: str, *, encoding: str = "base64", prefix: str = "//#") -> str:
    if encoding == "base64":
        payload = ";charset=utf-8;base64," + base64.b64encode(document.encode()).decode()
    else:
        payload = "," + quote(document, safe="")
    return f"console.log(1);\n{prefix} sourceMappingURL=data:application/json{payload}\n"


MAP = _map(sources=["webpack:///./src/a.ts"], sourcesContent=[AGENT_TS])


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [("base64", "//#"), ("base64", "//@"), ("url", "//#"), ("base64", "/*#")],
)
def test_inline_source_map_is_extracted(encoding: str, prefix: str) -> None:
    js = _inline(MAP, encoding=encoding, prefix=prefix)
    assert has_inline_source_map(js)
    assert inline_source_map(js) == MAP


def test_inline_source_map_is_found_after_minified_code_on_the_same_line() -> None:
    js = _inline(MAP).replace("\n//#", "//#")
    assert inline_source_map(js) == MAP


def test_unpadded_url_safe_base64_is_read() -> None:
    document = json.dumps({"sources": ["é?>"], "sourcesContent": ["ÿ~~~"]})
    payload = base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")
    js = f"x\n//# sourceMappingURL=data:application/json;base64,{payload}"
    assert inline_source_map(js) == document


@pytest.mark.parametrize(
    "js",
    [
        "console.log(1);\n",
        "//# sourceMappingURL=cli.js.map\n",
        'const c = "//# sourceMappingURL=data:application/json;base64," + encode(map);\n',
        "//# sourceMappingURL=data:text/plain;base64,eyJ9\n",
    ],
)
def test_no_inline_map(js: str) -> None:
    assert not has_inline_source_map(js)
    assert inline_source_map(js) is None


@pytest.mark.parametrize("payload", ["a", "e$$$", "eyJ%%"])
def test_undecodable_inline_map_is_detected_but_not_returned(payload: str) -> None:
    js = f"x\n//# sourceMappingURL=data:application/json;base64,{payload}\n"
    assert has_inline_source_map(js)
    assert inline_source_map(js) is None
