"""Python and JavaScript/TypeScript code rules: alias resolution, the JS/TS equivalents, and
properties checked against references written here."""

from __future__ import annotations

import keyword
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policytools import rule, scan

from custodes.detectors.rules_js import js_sites
from custodes.detectors.rules_python import python_sites
from custodes.policy.model import NamePatterns

NETWORK_PY = rule("enterprise.python-network-call")
NETWORK_JS = rule("enterprise.js-network-call")
SHELL_JS = rule("enterprise.js-shell-injection")


def _calls(sites: list) -> list[str]:
    return [s.name for s in sites if s.kind == "call"]


# -- Python: imports and aliases -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "line"),
    [
        ("import requests\nrequests.get(u)\n", 2),
        ("import requests as r\nr.get(u)\n", 2),
        ("from requests import get\nget(u)\n", 2),
        ("from requests import get as fetch_page\nfetch_page(u)\n", 2),
        ("from urllib import request\nrequest.urlopen(u)\n", 2),
        ("import urllib.request\nurllib.request.urlopen(u)\n", 2),
        ("import urllib.request as ur\nur.urlopen(u)\n", 2),
        ("from urllib.request import urlopen as op\nop(u)\n", 2),
        ("import socket\ns = socket.socket(socket.AF_INET)\n", 2),
        ("import httpx\nwith httpx.Client() as c:\n    pass\n", 2),
        ("import requests\nget = requests.get\nget(u)\n", 3),
        ("import http.client as hc\nconn = hc.HTTPSConnection(host)\n", 2),
    ],
)
def test_python_calls_resolve_through_aliases(code: str, line: int) -> None:
    found = scan(NETWORK_PY, "src/app.py", code)
    assert [f.start_line for f in found] == [line]


@pytest.mark.parametrize(
    "code",
    [
        # A name rebound to something else is not the module any more.
        "import requests as r\nr = Registry()\nr.get(u)\n",
        # An attribute of a local object named like the module.
        "session = {}\nsession.get('requests')\n",
        # The module in a type annotation, and a method of the response: no network call.
        "import requests\n\n\ndef parse(reply: requests.Response):\n    return reply.json()\n",
        # Another module's function of the same name.
        "from myhttp import get\nget(u)\n",
    ],
)
def test_python_names_that_only_look_alike(code: str) -> None:
    assert scan(NETWORK_PY, "src/app.py", code) == []


_IDENT = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and s not in {"requests", "get", "url", "print"}
)


@given(alias=_IDENT, function=st.sampled_from(["get", "post", "put", "delete", "Session"]))
@settings(max_examples=60, deadline=None)
def test_python_any_alias_of_the_module_resolves(alias: str, function: str) -> None:
    code = f"import requests as {alias}\n\n\ndef go(url):\n    return {alias}.{function}(url)\n"
    sites, _ = python_sites(code)
    assert f"requests.{function}" in _calls(sites)


@given(alias=_IDENT)
@settings(max_examples=60, deadline=None)
def test_python_any_alias_of_an_imported_function_resolves(alias: str) -> None:
    code = f"from subprocess import run as {alias}\n{alias}(cmd, shell=True)\n"
    sites, _ = python_sites(code)
    assert _calls(sites) == ["subprocess.run"]


# Literals in the Python sense: what `arguments: dynamic` must never call dynamic.
_LITERALS = st.recursive(
    st.integers() | st.text(max_size=8) | st.booleans() | st.none() | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner),
    max_leaves=6,
)


@given(value=_LITERALS)
@settings(max_examples=80, deadline=None)
def test_python_a_literal_argument_is_never_dynamic(value: object) -> None:
    sites, _ = python_sites(f"eval({value!r})\n")
    (site,) = [s for s in sites if s.name == "eval"]
    assert 0 not in site.dynamic


@given(value=_LITERALS, name=_IDENT)
@settings(max_examples=80, deadline=None)
def test_python_an_argument_holding_a_name_is_dynamic(value: object, name: str) -> None:
    sites, _ = python_sites(f"eval([{value!r}, {name}])\n")
    (site,) = [s for s in sites if s.name == "eval"]
    assert 0 in site.dynamic


def test_python_offsets_hash_the_call_text_even_after_multibyte_characters() -> None:
    code = 'note = "naïve café — ünïcode"\nimport os\nos.system("rm -rf " + path)\n'
    sites, data = python_sites(code)
    (site,) = [s for s in sites if s.name == "os.system"]
    assert data[site.start : site.end].decode() == 'os.system("rm -rf " + path)'


def test_python_source_that_does_not_parse_is_read_line_by_line() -> None:
    # A diff hunk: the added lines of a block, without its head.
    code = "        reply = requests.get(url, verify=False)\n    else:\n        pass\n"
    sites, data = python_sites(code)
    (site,) = [s for s in sites if s.name == "requests.get"]
    assert site.line == 1
    assert data[site.start : site.end] == b"requests.get(url, verify=False)"


# -- JavaScript and TypeScript ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code", "line"),
    [
        ("src/a.js", "const axios = require('axios');\naxios.get(u);\n", 2),
        ("src/a.mjs", "import axios from 'axios';\naxios.post(u, body);\n", 2),
        ("src/a.js", "import * as http from 'node:http';\nhttp.request(options);\n", 2),
        ("src/a.js", "import { request as send } from 'https';\nsend(options);\n", 2),
        ("src/a.js", "const { get } = require('https');\nget(url, cb);\n", 2),
        ("src/a.ts", "import http = require('http');\nhttp.get(url);\n", 2),
        ("src/a.ts", "const r = await fetch(url as string);\n", 1),
        ("src/a.tsx", "export const App = () => { useEffect(() => { fetch('/api'); }); return <div/>; };\n", 1),
        ("src/a.jsx", "export function App() { axios.get('/x'); return <p>hi</p>; }\nimport axios from 'axios';\n", 1),
        ("src/a.ts", "const socket = new WebSocket(`wss://${host}/feed`);\n", 1),
    ],
)
def test_js_and_ts_calls_resolve_through_imports(path: str, code: str, line: int) -> None:
    found = scan(NETWORK_JS, path, code)
    assert [f.start_line for f in found] == [line]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("src/a.ts", "const cache = new Map();\ncache.get(key);\n"),
        ("src/a.js", "import { get } from './store';\nget(key);\n"),
        ("src/a.js", "// fetch(url) is done by the worker\nconst note = 'axios.get';\n"),
    ],
)
def test_js_names_that_only_look_alike(path: str, code: str) -> None:
    assert scan(NETWORK_JS, path, code) == []


@pytest.mark.parametrize(
    "code",
    [
        "const cp = require('child_process');\ncp.exec(`rm -rf ${dir}`);\n",
        "const { exec: run } = require('child_process');\nrun('rm -rf ' + dir);\n",
        "import { execSync } from 'node:child_process';\nexecSync(command);\n",
        "require('child_process').exec(cmd);\n",
        "import * as cp from 'child_process';\ncp.execSync(cmd!);\n",
    ],
)
@pytest.mark.parametrize("path", ["src/run.js", "src/run.ts", "src/run.tsx"])
def test_the_shell_rule_fires_the_same_in_js_ts_and_tsx(code: str, path: str) -> None:
    found = scan(SHELL_JS, path, code)
    assert len(found) == 1
    assert found[0].preview in ("child_process.exec(…)", "child_process.execSync(…)")


@given(alias=_IDENT.filter(lambda s: s not in {"require", "exec"}))
@settings(max_examples=60, deadline=None)
def test_js_any_alias_of_a_destructured_import_resolves(alias: str) -> None:
    code = f"const {{ exec: {alias} }} = require('child_process');\n{alias}(command);\n"
    sites, _ = js_sites(code, "javascript")
    assert _calls(sites) == ["child_process.exec"]


def test_js_sites_survive_syntax_errors() -> None:
    # tree-sitter recovers: a half-written file still shows its complete calls.
    sites, _ = js_sites("function (\n  eval(userInput);\nconst x = ;\n", "javascript")
    assert "eval" in _calls(sites)


def test_js_object_literal_arguments_are_keywords() -> None:
    code = "tls.connect({ host, port: 443, rejectUnauthorized: false, ...extra });\n"
    (site,) = js_sites(code, "javascript")[0]
    assert site.keywords["rejectUnauthorized"] is False
    assert site.keywords["port"] == 443
    assert site.open_keywords


# -- name patterns -------------------------------------------------------------------------------


def _reference_glob(pattern: str, name: str) -> bool:
    """Backtracking reference: ``*`` is any run without '(' or ')', ``**`` any run at all."""
    if not pattern:
        return not name
    if pattern.startswith("**"):
        return any(_reference_glob(pattern[2:], name[i:]) for i in range(len(name) + 1))
    if pattern[0] == "*":
        for i in range(len(name) + 1):
            if "(" in name[:i] or ")" in name[:i]:
                break
            if _reference_glob(pattern[1:], name[i:]):
                return True
        return False
    if pattern[0] == "?":
        return bool(name) and name[0] not in "()" and _reference_glob(pattern[1:], name[1:])
    return bool(name) and name[0] == pattern[0] and _reference_glob(pattern[1:], name[1:])


_NAME_CHARS = st.sampled_from(list("ab.()"))


@given(
    pattern=st.lists(st.sampled_from(["a", "b", ".", "()", "*", "**", "?"]), max_size=6).map("".join),
    name=st.lists(_NAME_CHARS, max_size=8).map("".join),
)
@settings(max_examples=400, deadline=None)
def test_name_patterns_agree_with_a_backtracking_reference(pattern: str, name: str) -> None:
    assert NamePatterns((pattern,)).match(name) == _reference_glob(pattern, name)


def test_a_star_stops_at_a_call_and_two_stars_do_not() -> None:
    patterns = NamePatterns(("requests.*",))
    assert patterns.match("requests.get")
    assert not patterns.match("requests.get().json")
    assert NamePatterns(("**.chat.completions.create",)).match(
        "openai.OpenAI().chat.completions.create"
    )


# -- regex rules: pattern-not, against a reference -------------------------------------------------


def _reference_regex(text: str, pattern: str, excluded: str) -> list[tuple[int, int]]:
    """Line spans of the matches of ``pattern`` whose lines hold no match of ``excluded``."""
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)

    def line_of(offset: int) -> int:
        return max(i for i, s in enumerate(starts) if s <= offset) + 1

    kept = []
    for match in re.finditer(pattern, text, re.MULTILINE):
        first, last = line_of(match.start()), line_of(max(match.start(), match.end() - 1))
        if any(re.search(excluded, lines[i - 1]) for i in range(first, last + 1)):
            continue
        kept.append((first, last))
    return kept


@given(text=st.lists(st.sampled_from(["ab", "abb", "x", "ab x", "b", "a", ""]), max_size=8).map("\n".join))
@settings(max_examples=200, deadline=None)
def test_regex_rules_drop_matches_whose_lines_hold_a_pattern_not(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    policy = _regex_policy(tmp_path_factory)
    found = scan(policy, "notes.txt", text)
    expected = _reference_regex(text, r"ab+(?:\nab+)?", "x")
    assert sorted((f.start_line, f.end_line) for f in found) == sorted(set(expected))


_POLICY_CACHE: dict[str, object] = {}


def _regex_policy(factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if "regex" not in _POLICY_CACHE:
        from custodes.policy import load_policy

        path = factory.mktemp("policy") / "regex.yaml"
        path.write_text(
            "rules:\n  - id: t.ab\n    message: ab\n    severity: low\n"
            "    regex:\n      pattern: 'ab+(?:\\nab+)?'\n      pattern-not: [x]\n"
        )
        _POLICY_CACHE["regex"] = load_policy([path])
    return _POLICY_CACHE["regex"]
