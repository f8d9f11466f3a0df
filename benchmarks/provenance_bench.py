#!/usr/bin/env python3
"""Provenance benchmark: custodes beside Dolos and copydetect on one labelled corpus, in one run.

1. The corpus (cached under ``benchmarks/.work/provenance/``) is real code nobody here wrote.
   The *indexed* side (~140k lines) is CPython standard-library ``.py`` files plus plain
   JavaScript of npm packages fetched with ``npm pack`` at pinned versions (lodash, jQuery,
   esprima, acorn, moment, express, …). The *scanned* side (~150k lines) is other files of the
   same two languages: standard-library packages the indexed side does not use and other npm
   packages (uglify-js, webpack, mocha, eslint, …). A scanned file that already shares five
   consecutive code lines with the indexed side is left out, so the clones to find are the
   planted ones; files marked as generated are left out of both sides (custodes does not
   fingerprint them, by design). Fragments of 10–40 lines and at least 50 tokens, cut at
   statement boundaries from indexed files where their text occurs in no other indexed file
   and at least half their lines differ in shape (no export tables), are transformed into
   Type-1 (layout and comments), Type-2 (identifiers and literals renamed, too) and Type-3
   (statements added, removed and changed, too) clones and spliced into scanned files at
   top-level statement boundaries; a quarter of the scanned files stay untouched. The ground
   truth (scanned path and lines, source path and lines, clone type) is written beside the
   corpus in ``truth.json``. The transforms come from ``tests/fingerprint/clones.py`` when it
   exists, else from simple ones in this script (the report says which).
2. Every tool reads the same two folders. custodes: ``custodes index add indexed`` then
   ``custodes scan scanned --index FILE --policy provenance-only.yaml --format json
   --no-ledger``, a policy of one provenance rule, so that it does the job the peers do (its
   time is the sum; both are shown). The same scan under the default policy (the enterprise
   pack: credentials and code rules too) is timed apart and not compared. Dolos (``@dodona/dolos-lib`` from npm, default options, one analysis per
   language) through ``benchmarks/dolos_run.mjs``. copydetect (PyPI, default options; test
   directory = scanned, reference directory = indexed) through ``benchmarks/copydetect_run.py``.
   Each runs as its own process tree: wall time, and peak memory as the largest sum of the
   tree's resident sets (sampled every 50 ms) or the kernel's peak for the process, whichever
   is larger.
3. Scoring. A fragment is *found* when some reported match overlaps its scanned line range
   and names its source file. *Line precision* is the share of the scanned lines a tool
   reports (the union of its matches, per file) that lie inside planted fragments. copydetect
   shows a pair when the scanned file's similarity is above its display threshold (0.33 by
   default): it is scored on those pairs, and apart on every pair it computed.
4. ``--scale``: a 1M-line index (real, distinct code: the standard library, tests included,
   and the npm packages' files, all but the scanned side's; renamed copies only if that falls
   short) and a 1M-line repository (the scanned side copied under new names, each copy's
   files with a distinct last line) are built, and ``custodes index add`` and
   ``custodes scan`` (provenance only; then the enterprise pack, apart) are timed on them
   (target: under 60 s each).

Run ``.venv/bin/python benchmarks/provenance_bench.py``; ``--quick`` for a ~10% corpus;
``--scale`` to add the 1M-line runs (``--scale-only`` for those alone); ``--json FILE`` to keep
the figures. Dolos is installed with npm into ``benchmarks/.work/node``, copydetect with pip
into ``benchmarks/.work/peers-venv``; a peer that cannot be installed or run is reported and
skipped.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import hashlib
import io
import json
import keyword
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import tokenize
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
PROV = WORK / "provenance"
NPM_CACHE = PROV / "npm"
NODE_DIR = WORK / "node"
PEERS_VENV = WORK / "peers-venv"
CUSTODES = ROOT / ".venv" / "bin" / "custodes"
CLONES = ROOT / "tests" / "fingerprint" / "clones.py"

DOLOS_PACKAGE = "@dodona/dolos-lib@3.5.1"
COPYDETECT_PACKAGE = "copydetect==0.5.0"
COLLECTION = "bench"

TARGET_RECALL = {"type1": 0.95, "type2": 0.95, "type3": 0.85}
TARGET_LINE_PRECISION = 0.90
TARGET_VS_DOLOS = 10.0
TARGET_VS_COPYDETECT = 4.0
TARGET_SCALE_S = 60.0

# npm packages at pinned versions, with the files each side takes from them (a prefix ending in
# "/" takes a folder). Bundles that repeat a package's own sources (jQuery's slim build, the
# browser builds, minified files, moment's locales) are left out so a fragment has one source.
INDEXED_PACKAGES: dict[str, tuple[str, ...]] = {
    "lodash@4.17.21": ("lodash.js",),
    "jquery@3.7.1": ("dist/jquery.js",),
    "esprima@4.0.1": ("dist/esprima.js",),
    "acorn@8.14.0": ("dist/acorn.js",),
    "moment@2.30.1": ("moment.js",),
    "express@4.21.2": ("lib/",),
    "commander@12.1.0": ("lib/",),
    "async@3.2.6": ("dist/async.js",),
    "bluebird@3.7.2": ("js/release/",),
    "underscore@1.13.7": ("underscore.js",),
    "immutable@4.3.7": ("dist/immutable.js",),
    "q@1.5.1": ("q.js",),
}
HOST_PACKAGES: dict[str, tuple[str, ...]] = {
    "uglify-js@3.19.3": ("lib/",),
    "webpack@5.97.1": ("lib/",),
    "mocha@10.8.2": ("lib/",),
    "ws@8.18.0": ("lib/",),
    "js-yaml@4.1.0": ("lib/",),
    "yargs@17.7.2": ("build/lib/",),
    "eslint@8.57.1": ("lib/",),
    "handlebars@4.7.8": ("lib/",),
    "less@4.2.1": ("lib/",),
}
# Standard-library folders that are data or near-copies of each other, not code to index.
STDLIB_SKIP = {"site-packages", "dist-packages", "encodings", "pydoc_data", "test", "idlelib"}
STDLIB_SKIP_PARTS = {"test", "tests", "idle_test"}
LANGS = {".py": "python", ".js": "javascript"}
# Clone benchmarks (BigCloneBench, SourcererCC) count a fragment as code from 50 tokens up; a
# fragment that is mostly docstring has fewer, whatever its line count.
MIN_TOKENS = 50
GENERATED = re.compile(r"(?i)\bgenerated\b|\bDO NOT EDIT\b")
TYPES = ("type1", "type2", "type3")


# -- process measurement -----------------------------------------------------------------------


@dataclass
class Measured:
    wall_s: float
    peak_mib: float
    rc: int
    stderr: str


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (via /proc children lists)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * page
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


def measure(
    cmd: list[str],
    cwd: Path,
    timeout: float,
    stdout: Path | None = None,
    env: dict[str, str] | None = None,
) -> Measured:
    """Run ``cmd``; wall time and peak memory of its whole process tree."""
    out = stdout.open("wb") if stdout else subprocess.DEVNULL
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=out, stderr=err, env=env, start_new_session=True
        )
        peak, status, rusage_kib = 0, 0, 0
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    rusage_kib = usage.ru_maxrss
                    break
                peak = max(peak, _tree_rss(proc.pid))
                if time.perf_counter() - start > timeout:
                    os.killpg(proc.pid, signal.SIGKILL)
                    os.wait4(proc.pid, 0)
                    proc.returncode = -9
                    raise subprocess.TimeoutExpired(cmd, timeout)
                time.sleep(0.05)
        finally:
            if stdout:
                out.close()  # type: ignore[union-attr]
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-1500:]
    return Measured(wall, max(peak, rusage_kib * 1024) / 2**20, proc.returncode, tail)


# -- lexing ------------------------------------------------------------------------------------

_PY_TOKEN = re.compile(
    r"""(?P<comment>\#[^\n]*)
      | (?P<string>(?i:[rbuf]{0,2})(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"
                  |'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
      | (?P<number>0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?[jJ]?)
      | (?P<name>[A-Za-z_]\w*)
      | (?P<space>[ \t]+)
      | (?P<newline>\n)
      | (?P<other>.)""",
    re.VERBOSE,
)
_JS_TOKEN = re.compile(
    r"""(?P<comment>//[^\n]*|/\*[\s\S]*?\*/)
      | (?P<string>'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`(?:\\.|[^`\\])*`)
      | (?P<number>0[xXoObB][0-9a-fA-F_]+n?|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?n?)
      | (?P<name>[A-Za-z_$][\w$]*)
      | (?P<space>[ \t]+)
      | (?P<newline>\n)
      | (?P<other>.)""",
    re.VERBOSE,
)
PY_KEEP = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | {"self", "cls"}
JS_KEEP = {
    *["break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete", "do", "else", "export", "extends", "false", "finally", "for", "function", "if", "import", "in", "instanceof", "let", "new", "null", "return", "super", "switch", "this", "throw", "true", "try", "typeof", "var", "void", "while", "with", "yield", "async", "await", "of", "static", "get", "set", "undefined", "NaN", "Infinity", "arguments", "Object", "Array", "Math", "JSON", "String", "Number", "Boolean", "Symbol", "Promise", "Error", "TypeError", "RangeError", "RegExp", "Date", "Map", "Set", "WeakMap", "console", "require", "module", "exports", "window", "document", "globalThis", "process", "Buffer"]
}
_WORDS = ["alpha", "beta", "gamma", "delta", "item", "node", "entry", "value", "record", "block", "chunk", "token", "frame", "slot", "field", "count", "index", "total", "limit", "offset", "cursor", "buffer", "state", "owner", "target", "source", "result", "handle", "marker", "option", "setting", "flag", "key", "label", "group", "batch", "layer", "scope"]


def tokens(code: str, language: str) -> list[tuple[str, str]]:
    """(kind, text) for every token of ``code``; joined back they give ``code`` exactly."""
    pattern = _PY_TOKEN if language == "python" else _JS_TOKEN
    return [(m.lastgroup or "other", m.group()) for m in pattern.finditer(code)]


def significant(line: str) -> str | None:
    """A line's text with spaces collapsed, or None for blank, comment or bracket-only lines."""
    text = " ".join(line.split())
    if len(text) < 3 or text.startswith(("#", "//", "/*", "*", '"""', "'''")):
        return None
    if not re.search(r"[A-Za-z0-9]", text):
        return None
    return text


def windows(lines: list[str], size: int = 5) -> set[str]:
    """Digests of every run of ``size`` consecutive significant lines."""
    sig = [s for s in (significant(line) for line in lines) if s is not None]
    return {
        hashlib.blake2b("\n".join(sig[i : i + size]).encode(), digest_size=12).hexdigest()
        for i in range(len(sig) - size + 1)
    }


def varied(lines: list[str], language: str) -> bool:
    """Whether at least half the code lines differ in shape (names, strings and numbers
    abstracted): a table of exports or a run of ``if i == N: return …`` is no code anyone
    would call copied, and it matches any other table of its kind."""
    shapes = []
    for line in lines:
        if significant(line) is None:
            continue
        kinds = {"name": "I", "string": "S", "number": "N"}
        shape = "".join(
            kinds.get(kind, text) for kind, text in tokens(line, language)
            if kind not in ("space", "comment", "newline")
        )  # fmt: skip
        shapes.append(shape)
    return bool(shapes) and len(set(shapes)) * 2 >= len(shapes)


def code_tokens(lines: list[str], language: str) -> int:
    """Tokens of ``lines`` other than comments and layout (a string counts as one)."""
    skip = ("space", "comment", "newline")
    return sum(kind not in skip for kind, _ in tokens("\n".join(lines), language))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


@dataclass(frozen=True)
class Statements:
    """Where statements start and end in a file (1-based line numbers)."""

    starts: frozenset[int]
    ends: frozenset[int]
    clauses: frozenset[int]  # starts that continue a compound statement (else, except, …)
    top: tuple[int, ...]  # starts at the outermost level after a blank line: splice points
    depths: tuple[int, ...] = ()  # JavaScript: bracket depth at the start of each line


_PY_CLAUSES = {"else", "elif", "except", "finally", "case"}
_JS_CLAUSE = re.compile(r"^(?:else\b|catch\b|finally\b|case\b|default\b|[.)\]}:?,])")


def python_statements(lines: list[str]) -> Statements | None:
    starts, ends, clauses = set(), set(), set()
    at_start = True
    try:
        for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                continue
            if tok.type == tokenize.NEWLINE:
                ends.add(tok.start[0])
                at_start = True
                continue
            if at_start and tok.type != tokenize.ENDMARKER:
                starts.add(tok.start[0])
                if tok.string in _PY_CLAUSES:
                    clauses.add(tok.start[0])
                at_start = False
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    top = tuple(
        n
        for n in sorted(starts - clauses)
        if _indent(lines[n - 1]) == 0 and n > 1 and not lines[n - 2].strip()
    )
    return Statements(frozenset(starts), frozenset(ends), frozenset(clauses), top)


def js_statements(lines: list[str]) -> Statements:
    """Statement boundaries of JavaScript, from a small lexer (strings, comments, templates,
    regular expressions) that tracks bracket depth at each line start."""
    text = "\n".join(lines) + "\n"
    depth_at: list[int] = []
    normal_at: list[bool] = []
    depth, i, n = 0, 0, len(text)
    state = "code"
    stack: list[int] = []  # template-literal nesting: depth at each `${`
    prev = ""  # last significant character in code
    line_start = True
    while i < n:
        if line_start:
            depth_at.append(depth)
            normal_at.append(state == "code")
            line_start = False
        c = text[i]
        if c == "\n":
            line_start = True
            if state == "line-comment":
                state = "code"
            elif state in ("'", '"'):
                state = "code"  # an unterminated string ends at the line (bad input)
            i += 1
            continue
        if state == "code":
            two = text[i : i + 2]
            if two == "//":
                state = "line-comment"
                i += 2
                continue
            if two == "/*":
                state = "block-comment"
                i += 2
                continue
            if c in "'\"`":
                state = c
            elif c == "/" and (prev == "" or prev in "(,=:[!&|?{};+-*%<>~^"):
                state = "regex"
            elif c in "([{":
                depth += 1
            elif c in ")]}":
                if c == "}" and stack and depth == stack[-1]:
                    stack.pop()
                    state = "`"
                else:
                    depth -= 1
            if not c.isspace():
                prev = c
            i += 1
            continue
        if state == "block-comment":
            if text.startswith("*/", i):
                state = "code"
                i += 2
                continue
            i += 1
            continue
        if state == "line-comment":
            i += 1
            continue
        if state == "regex":
            if c == "\\":
                i += 2
                continue
            if c == "[":
                state = "regex-class"
            elif c == "/":
                state = "code"
                prev = "a"
            i += 1
            continue
        if state == "regex-class":
            if c == "\\":
                i += 2
                continue
            if c == "]":
                state = "regex"
            i += 1
            continue
        # inside a string or template literal
        if c == "\\":
            i += 2
            continue
        if state == "`" and text.startswith("${", i):
            stack.append(depth)
            state = "code"
            prev = "{"
            i += 2
            continue
        if c == state:
            state = "code"
            prev = "a"
        i += 1
    while len(depth_at) < len(lines) + 1:
        depth_at.append(depth)
        normal_at.append(state == "code")
    starts, ends, clauses = set(), set(), set()
    last_code = ""
    for k, line in enumerate(lines, start=1):
        stripped = line.strip()
        code = normal_at[k - 1] and stripped and not stripped.startswith(("//", "/*", "*"))
        if code and (last_code == "" or last_code[-1] in ";{}"):
            starts.add(k)
            if _JS_CLAUSE.match(stripped):
                clauses.add(k)
        if code:
            last_code = stripped.split("//")[0].rstrip() or last_code
        if stripped.endswith((";", "}")) and normal_at[k] and depth_at[k] <= depth_at[k - 1]:
            ends.add(k)
    top_depth = min((depth_at[k - 1] for k in starts), default=0)
    top = tuple(
        k
        for k in sorted(starts - clauses)
        if depth_at[k - 1] == top_depth and k > 1 and not lines[k - 2].strip()
    )
    return Statements(frozenset(starts), frozenset(ends), frozenset(clauses), top, tuple(depth_at))


def statements(lines: list[str], language: str) -> Statements | None:
    return python_statements(lines) if language == "python" else js_statements(lines)


def pick_block(
    lines: list[str], stm: Statements, rng: random.Random, taken: list[range]
) -> tuple[int, int] | None:
    """A random run of whole statements, 10–40 lines, that does not cut a compound statement."""
    starts = sorted(stm.starts - stm.clauses)
    if not starts:
        return None
    depths = stm.depths
    for _ in range(40):
        s = starts[rng.randrange(len(starts))]
        want = rng.randint(10, 40)
        ends = [e for e in range(s + 9, min(s + 40, len(lines) + 1)) if e in stm.ends]
        if not ends:
            continue
        e = min(ends, key=lambda x: abs(x - s + 1 - want))
        if any(s <= t.stop - 1 and t.start <= e for t in taken):
            continue
        base = _indent(lines[s - 1])
        body = lines[s - 1 : e]
        if any(line.strip() and _indent(line) < base for line in body):
            continue
        if e < len(lines):
            nxt = next((k for k in range(e + 1, len(lines) + 1) if lines[k - 1].strip()), None)
            if nxt is not None and nxt in stm.clauses and _indent(lines[nxt - 1]) >= base:
                continue
        if depths and (
            depths[e] != depths[s - 1] or min(depths[s - 1 : e + 1]) < depths[s - 1]
        ):
            continue
        code = [line for line in body if significant(line)]
        if len(code) < 8 or len(code) < 0.6 * len(body):
            continue
        return s, e
    return None


# -- clone transforms (used when tests/fingerprint/clones.py is absent) ------------------------


def _fresh_name(rng: random.Random, language: str, used: set[str]) -> str:
    while True:
        a, b = rng.choice(_WORDS), rng.choice(_WORDS)
        name = f"{a}_{b}" if language == "python" else a + b.capitalize()
        if rng.random() < 0.3:
            name += str(rng.randint(2, 9))
        if name not in used:
            used.add(name)
            return name


def relayout(code: str, language: str, rng: random.Random) -> str:
    """Type-1: the same tokens with other indentation, blank lines and comments."""
    unit = rng.choice((2, 3, 8)) if language == "python" else rng.choice((2, 4, 8))
    comment = "#" if language == "python" else "//"
    lines = code.split("\n")
    # The source's own indentation step: the smallest indentation of a code line.
    step = min((_indent(x) for x in lines if x.strip() and _indent(x)), default=4)
    out: list[str] = []
    for line in lines:
        toks = tokens(line, language)
        if toks and all(k in ("comment", "space") for k, _ in toks) and rng.random() < 0.7:
            continue  # drop a comment line
        body = "".join(
            t
            for k, t in toks
            if not (k == "comment" and not t.startswith("/*")) or rng.random() < 0.3
        ).rstrip()
        stripped = body.lstrip(" \t")
        width = len(body) - len(stripped)
        levels, rest = divmod(width, step)
        body = " " * (levels * unit + rest) + stripped
        if language == "javascript" and stripped:
            body = re.sub(r"(?<=[,;])(?=\S)", " ", body) if rng.random() < 0.5 else body
        out.append(body)
        if stripped and rng.random() < 0.08:
            out.append("")
        if stripped and rng.random() < 0.06:
            out.append(" " * _indent(body) + f"{comment} {rng.choice(_WORDS)} {rng.choice(_WORDS)}")
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


def rename(code: str, language: str, rng: random.Random) -> str:
    """Type-2: identifiers renamed consistently and literals changed, then relaid out."""
    keep = PY_KEEP if language == "python" else JS_KEEP
    mapping: dict[str, str] = {}
    used: set[str] = set()
    out: list[str] = []
    for kind, text in tokens(code, language):
        if kind == "name" and text not in keep:
            if text not in mapping:
                mapping[text] = _fresh_name(rng, language, used)
            out.append(mapping[text])
        elif kind == "string" and rng.random() < 0.5 and "\n" not in text and len(text) >= 2:
            m = re.match(r"^([A-Za-z]*)(['\"`])", text)
            if m and not m.group(1).lower().count("f") and text.endswith(m.group(2)):
                out.append(f"{m.group(1)}{m.group(2)}{rng.choice(_WORDS)}{m.group(2)}")
            else:
                out.append(text)
        elif kind == "number" and text.isdigit() and rng.random() < 0.5:
            out.append(str(int(text) + rng.randint(1, 9)))
        else:
            out.append(text)
    return relayout("".join(out), language, rng)


_FLIP = {"==": "!=", "!=": "==", "<": "<=", ">": ">=", "<=": "<", ">=": ">"}


def edit(code: str, language: str, rng: random.Random) -> str:
    """Type-3: a Type-2 clone with about one line in seven added, removed or changed."""
    lines = rename(code, language, rng).split("\n")
    simple = [
        i
        for i, line in enumerate(lines)
        if line.strip()
        and not line.rstrip().endswith((":", "{", "(", "[", ",", "\\"))
        and not line.strip().startswith(("}", ")", "]", "@", "else", "elif", "except", "case"))
        and (i + 1 >= len(lines) or _indent(lines[i + 1]) <= _indent(line))
    ]
    python = language == "python"
    for _ in range(max(2, len(lines) // 7)):
        if not simple:
            break
        i = rng.choice(simple)
        simple.remove(i)
        pad = " " * _indent(lines[i])
        var = f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}"
        what = rng.random()
        compare = re.search(r"==|!=|<=|>=|<|>", lines[i])
        if what < 0.25 and len(simple) > 3:
            lines[i] = pad + ("pass" if python else ";")  # a statement removed
            continue
        if what < 0.5 and compare:
            lines[i] = lines[i][: compare.start()] + _FLIP[compare.group()] + lines[i][compare.end() :]
            continue
        at = i + 1 if what < 0.75 else i
        new = f"{var} = {rng.randint(0, 99)}" if python else f"var {var} = {rng.randint(0, 99)};"
        if what >= 0.75:
            new = f"print({var!r})" if python else f"console.log({var!r});"
        lines.insert(at, pad + new)
        simple = [j + (j >= at) for j in simple]
    return "\n".join(lines)


@dataclass(frozen=True)
class Generator:
    name: str
    transforms: dict[str, Callable[[str, str, random.Random], str]]


def clone_generator() -> Generator:
    """tests/fingerprint/clones.py's transforms when present, else this script's fallbacks."""
    if CLONES.exists():
        sys.path.insert(0, str(CLONES.parent))
        try:
            import clones

            digest = hashlib.sha256(CLONES.read_bytes()).hexdigest()[:12]
            return Generator(
                f"tests/fingerprint/clones.py@{digest}",
                {"type1": clones.type1, "type2": clones.type2, "type3": clones.type3},
            )
        except (ImportError, AttributeError) as exc:
            print(f"  tests/fingerprint/clones.py unusable ({exc}): fallback transforms")
        finally:
            sys.path.remove(str(CLONES.parent))
    digest = hashlib.sha256(
        "".join(f.__code__.co_code.hex() for f in (relayout, rename, edit)).encode()
    ).hexdigest()[:12]
    return Generator(
        f"fallback@{digest}", {"type1": relayout, "type2": rename, "type3": edit}
    )


# -- sources -----------------------------------------------------------------------------------


def npm_package(spec: str) -> Path | None:
    """The unpacked ``npm pack`` of ``spec`` (cached)."""
    name, _, version = spec.rpartition("@")
    dest = NPM_CACHE / f"{name.replace('/', '__')}-{version}"
    if (dest / "package").is_dir():
        return dest / "package"
    npm = shutil.which("npm")
    if npm is None:
        print("  npm not found: no JavaScript", flush=True)
        return None
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [npm, "pack", "--silent", "--json", spec, "--pack-destination", str(NPM_CACHE)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if proc.returncode:
        print(f"  npm pack {spec} failed: {proc.stderr.strip()[-300:]}", flush=True)
        return None
    tarball = NPM_CACHE / json.loads(proc.stdout)[0]["filename"]
    tmp = dest.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp, filter="data")
    tmp.rename(dest)
    return dest / "package"


def package_files(packages: dict[str, tuple[str, ...]]) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for spec, wanted in packages.items():
        root = npm_package(spec)
        if root is None:
            continue
        name = spec.rpartition("@")[0].replace("/", "__")
        for path in sorted(root.rglob("*.js")):
            rel = path.relative_to(root).as_posix()
            if ".min." in rel or not any(
                rel == w or (w.endswith("/") and rel.startswith(w)) for w in wanted
            ):
                continue
            found.append((path, f"js/{name}/{rel}"))
    return found


def stdlib_files(skip: bool = True) -> list[tuple[Path, str, str]]:
    """(file, corpus path, top-level name) for standard-library modules, in a stable order."""
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if rel.parts[0] in {"site-packages", "dist-packages"}:
            continue
        if skip and (rel.parts[0] in STDLIB_SKIP or STDLIB_SKIP_PARTS & set(rel.parts)):
            continue
        found.append((path, f"py/cpython/{rel.as_posix()}", rel.parts[0].removesuffix(".py")))
    return found


def read_lines(path: Path) -> list[str] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


# -- corpus ------------------------------------------------------------------------------------


@dataclass
class Fragment:
    id: int
    type: str
    language: str
    source: str  # corpus path of the indexed file
    source_start: int
    source_end: int
    host: str = ""  # corpus path of the scanned file
    start: int = 0
    end: int = 0
    lines: list[str] = field(default_factory=list)


@dataclass
class Corpus:
    root: Path
    truth: dict[str, Any]

    @property
    def fragments(self) -> list[dict[str, Any]]:
        return list(self.truth["fragments"])


def _select(
    candidates: list[tuple[str, list[str]]], budget: int, rng: random.Random
) -> list[tuple[str, list[str]]]:
    """Files in a seeded order until ``budget`` lines; a file that would overshoot by more than
    a tenth is passed over (so the quick corpus is not one big file)."""
    order = sorted(candidates, key=lambda c: c[0])
    rng.shuffle(order)
    chosen, total = [], 0
    for rel, lines in order:
        if total >= budget:
            break
        if total + len(lines) > budget * 1.1:
            continue
        chosen.append((rel, lines))
        total += len(lines)
    return chosen


def build_corpus(
    name: str,
    indexed_lines: int,
    scanned_lines: int,
    per_type: int,
    seed: int,
    generator: Generator,
) -> Corpus:
    params = {
        "indexed_lines": indexed_lines, "scanned_lines": scanned_lines, "per_type": per_type,
        "seed": seed, "generator": generator.name, "indexed_packages": INDEXED_PACKAGES,
        "host_packages": HOST_PACKAGES, "python": platform.python_version(), "layout": 7,
    }  # fmt: skip
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    root = PROV / name
    truth_file = root / "truth.json"
    if truth_file.exists():
        truth = json.loads(truth_file.read_text())
        if truth.get("key") == key:
            return Corpus(root, truth)
    rng = random.Random(seed)

    # Python: whole top-level modules and packages go to one side, chosen by a seeded hash.
    py_index: list[tuple[str, list[str]]] = []
    py_host: list[tuple[str, list[str]]] = []
    for path, rel, top in stdlib_files():
        lines = read_lines(path)
        if lines is None or not 40 <= len(lines) <= 4000:
            continue
        side = hashlib.sha256(f"{seed}/{top}".encode()).digest()[0] % 2
        (py_index if side == 0 else py_host).append((rel, lines))
    js_index = [(rel, ls) for p, rel in package_files(INDEXED_PACKAGES) if (ls := read_lines(p))]
    js_host = [(rel, ls) for p, rel in package_files(HOST_PACKAGES) if (ls := read_lines(p))]
    js_host = [(rel, ls) for rel, ls in js_host if 40 <= len(ls) <= 4000]

    # The scanned side reaches its size with the fragments in it (25 lines each on average).
    half_i, half_s = indexed_lines // 2, (scanned_lines - per_type * len(TYPES) * 25) // 2
    # custodes does not index files marked as generated (it says so): leave them out.
    py_index = [(rel, ls) for rel, ls in py_index if not GENERATED.search("\n".join(ls[:20]))]
    js_index = [(rel, ls) for rel, ls in js_index if not GENERATED.search("\n".join(ls[:20]))]
    indexed = _select(py_index, half_i, rng) + _select(js_index, half_i, rng)
    indexed_windows: set[str] = set()
    by_window: dict[str, set[str]] = defaultdict(set)  # 4-line windows: which files hold them
    for rel, lines in indexed:
        indexed_windows |= windows(lines, 5)
        for w in windows(lines, 4):
            by_window[w].add(rel)
    # Scanned files that already share code with the indexed side would blur the ground truth.
    # Files marked as generated are left out too: custodes does not check them for provenance
    # (it lists them as skipped), so a fragment there would measure that policy, not matching.
    clean_hosts = [
        (rel, lines)
        for rel, lines in py_host + js_host
        if indexed_windows.isdisjoint(windows(lines, 5))
        and not GENERATED.search("\n".join(lines[:20]))
    ]
    hosts = _select([h for h in clean_hosts if h[0].endswith(".py")], half_s, rng) + _select(
        [h for h in clean_hosts if h[0].endswith(".js")], half_s, rng
    )

    # Fragments: from indexed files, only where their text is unique to that file.
    files = {rel: lines for rel, lines in indexed}
    stms = {rel: statements(lines, LANGS[rel[-3:]]) for rel, lines in indexed}
    pools = {
        lang: [rel for rel in files if LANGS[rel[-3:]] == lang and stms[rel] is not None]
        for lang in LANGS.values()
    }
    weights = {lang: [len(files[rel]) for rel in pool] for lang, pool in pools.items()}
    taken: dict[str, list[range]] = defaultdict(list)
    fragments: list[Fragment] = []
    for n in range(per_type * len(TYPES)):
        ftype = TYPES[n % len(TYPES)]
        lang = ("python", "javascript")[(n // len(TYPES)) % 2]
        frng = random.Random(f"{seed}/fragment/{n}")
        for _ in range(200):
            rel = frng.choices(pools[lang], weights[lang])[0]
            stm = stms[rel]
            assert stm is not None
            block = pick_block(files[rel], stm, frng, taken[rel])
            if block is None:
                continue
            s, e = block
            body = files[rel][s - 1 : e]
            if any(by_window[w] != {rel} for w in windows(body, 4)):
                continue  # its text is in another indexed file too: two right answers
            if not varied(body, lang) or code_tokens(body, lang) < MIN_TOKENS:
                continue
            code = textwrap.dedent("\n".join(body))
            text = generator.transforms[ftype](code, lang, frng)
            lines = [line.rstrip() for line in text.strip("\n").split("\n")]
            if len([x for x in lines if x.strip()]) < 8:
                continue
            taken[rel].append(range(s, e + 1))
            fragments.append(Fragment(n, ftype, lang, "indexed/" + rel, s, e, lines=lines))
            break
        else:
            raise RuntimeError(f"no fragment found for #{n} ({lang}); the corpus is too small")

    # Splice: three hosts in four get fragments, at top-level statement boundaries.
    host_files = {rel: lines for rel, lines in hosts}
    order = sorted(host_files)
    rng.shuffle(order)
    receiving = {
        lang: [rel for rel in order[: len(order) * 3 // 4] if LANGS[rel[-3:]] == lang]
        for lang in LANGS.values()
    }
    placed: dict[str, list[Fragment]] = defaultdict(list)
    counters = dict.fromkeys(receiving, 0)
    for frag in fragments:
        pool = receiving[frag.language]
        target = pool[counters[frag.language] % len(pool)]
        counters[frag.language] += 1
        placed[target].append(frag)
    for target, group in placed.items():
        lines = host_files[target]
        stm = statements(lines, LANGS[target[-3:]])
        points = list(stm.top) if stm is not None and stm.top else []
        points = [p for p in points if p > 1]
        hrng = random.Random(f"{seed}/host/{target}")
        slots = (
            sorted(hrng.sample(points, len(group)))
            if len(points) >= len(group)
            else [len(lines) + 1] * len(group)
        )
        out: list[str] = []
        prev = 1
        for slot, frag in zip(slots, group, strict=True):
            out.extend(lines[prev - 1 : slot - 1])
            prev = slot
            if out and out[-1].strip():
                out.append("")
            frag.host = "scanned/" + target
            frag.start = len(out) + 1
            out.extend(frag.lines)
            frag.end = len(out)
            out.append("")
        out.extend(lines[prev - 1 :])
        host_files[target] = out

    if root.exists():
        shutil.rmtree(root)
    for folder, tree in (("indexed", files), ("scanned", host_files)):
        for rel, lines in tree.items():
            dest = root / folder / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text("\n".join(lines), encoding="utf-8")
    truth = {
        "key": key,
        "params": params,
        "indexed": {"files": len(files), "lines": sum(len(v) for v in files.values())},
        "scanned": {
            "files": len(host_files),
            "lines": sum(len(v) for v in host_files.values()),
            "untouched": len(host_files) - len(placed),
        },
        "by_language": {
            side: {
                lang: sum(len(v) for k, v in items.items() if LANGS[k[-3:]] == lang)
                for lang in LANGS.values()
            }
            for side, items in (("indexed", files), ("scanned", host_files))
        },
        "fragments": [
            {k: v for k, v in asdict(f).items() if k != "lines"} for f in fragments
        ],
    }
    truth_file.write_text(json.dumps(truth, indent=1))
    return Corpus(root, truth)


# -- tools -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    host: str  # corpus path of the scanned file
    start: int
    end: int
    source: str  # corpus path of the indexed file
    source_start: int = 0
    source_end: int = 0


@dataclass
class Run:
    tool: str
    ok: bool
    wall_s: float = 0.0
    peak_mib: float = 0.0
    matches: list[Match] = field(default_factory=list)
    error: str = ""
    parts: dict[str, dict[str, float]] = field(default_factory=dict)
    note: str = ""


def _corpus_path(path: str, side: str, known: set[str]) -> str:
    """A tool's path as the corpus path (``scanned/…`` or ``indexed/…``)."""
    path = os.path.normpath(path).removeprefix("./")
    for cand in (path, f"{side}/{path}"):
        if cand in known:
            return cand
    for cand in known:
        if cand.endswith("/" + path) or path.endswith("/" + cand):
            return cand
    return path


# The peers find copies and nothing else; so does custodes in the comparison (its default
# policy, the enterprise pack, also looks for credentials and risky code: timed apart).
PROVENANCE_ONLY = """\
schema: 1
name: provenance-only
description: Only the provenance check, the job Dolos and copydetect do.
rules:
  - id: bench.provenance
    message: code copied from an indexed collection
    provenance:
      collections: [deny, warn]
"""


def _policy(where: Path) -> Path:
    policy = where / "provenance-only.yaml"
    policy.write_text(PROVENANCE_ONLY)
    return policy


def run_custodes(corpus: Corpus, timeout: float) -> Run:
    index = corpus.root.parent / f"{corpus.root.name}.custodes-index"
    report = corpus.root.parent / f"{corpus.root.name}.custodes.json"
    enterprise = corpus.root.parent / f"{corpus.root.name}.custodes-enterprise.json"
    for stale in (index, report, enterprise):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    policy = _policy(corpus.root.parent)
    add = measure(
        [str(CUSTODES), "index", "add", "indexed", "--collection", COLLECTION,
         "--index", str(index)], corpus.root, timeout,
    )  # fmt: skip
    if add.rc != 0:
        return Run("custodes", False, add.wall_s, add.peak_mib, error=f"index add: exit {add.rc}: {add.stderr}")
    scan = measure(
        [str(CUSTODES), "scan", "scanned", "--index", str(index), "--policy", str(policy),
         "--format", "json", "--no-ledger", "--output", str(report)], corpus.root, timeout,
    )  # fmt: skip
    parts = {
        "index add": {"wall_s": add.wall_s, "peak_mib": add.peak_mib},
        "scan (provenance only)": {"wall_s": scan.wall_s, "peak_mib": scan.peak_mib},
    }
    wall, peak = add.wall_s + scan.wall_s, max(add.peak_mib, scan.peak_mib)
    if scan.rc not in (0, 1) or not report.exists():
        return Run("custodes", False, wall, peak, error=f"scan: exit {scan.rc}: {scan.stderr}", parts=parts)
    # Not part of the comparison: the same scan with the default policy (the enterprise pack).
    full = measure(
        [str(CUSTODES), "scan", "scanned", "--index", str(index), "--format", "json",
         "--no-ledger", "--output", str(enterprise)], corpus.root, timeout,
    )  # fmt: skip
    parts["scan (enterprise pack, not compared)"] = {"wall_s": full.wall_s, "peak_mib": full.peak_mib}
    data = json.loads(report.read_text())
    known = _known(corpus)
    matches = []
    for f in data.get("findings", []):
        if f.get("kind") != "provenance":
            continue
        src = f.get("source") or {}
        matches.append(
            Match(
                _corpus_path(f["path"], "scanned", known), int(f["start_line"]),
                int(f["end_line"]), _corpus_path(str(src.get("path", "")), "indexed", known),
                int(src.get("start_line") or 0), int(src.get("end_line") or 0),
            )
        )
    skipped = [f"{s['path']} ({s['reason']})" for s in data.get("skipped") or []]
    note = f"not scanned: {', '.join(skipped)}" if skipped else ""
    if full.rc in (0, 1) and enterprise.exists():
        same = sum(
            1 for f in json.loads(enterprise.read_text()).get("findings", [])
            if f.get("kind") == "provenance"
        )  # fmt: skip
        if same != len(matches):
            note += f"; the enterprise-pack scan reported {same} provenance findings, not {len(matches)}"
    else:
        note += f"; the enterprise-pack scan failed: exit {full.rc}: {full.stderr[-300:]}"
    return Run("custodes", True, wall, peak, matches, parts=parts, note=note.strip("; "))


def _known(corpus: Corpus) -> set[str]:
    return {
        p.relative_to(corpus.root).as_posix()
        for side in ("indexed", "scanned")
        for p in (corpus.root / side).rglob("*")
        if p.is_file()
    }


def ensure_dolos() -> dict[str, Any]:
    lib = NODE_DIR / "node_modules" / "@dodona" / "dolos-lib" / "package.json"
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return {"error": "node/npm not found"}
    if not lib.exists():
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        if not (NODE_DIR / "package.json").exists():
            (NODE_DIR / "package.json").write_text('{"private": true}\n')
        print(f"npm install {DOLOS_PACKAGE} into {NODE_DIR} ...", flush=True)
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", DOLOS_PACKAGE],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        if proc.returncode or not lib.exists():
            return {"error": f"npm install failed: {proc.stderr.strip()[-300:]}"}
    version = json.loads(lib.read_text())["version"]
    node_version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {"path": node, "version": f"dolos-lib {version} (node {node_version})"}


def ensure_copydetect() -> dict[str, Any]:
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    probe = [str(python), "-c", "import copydetect; print(copydetect.__version__)"]
    out = subprocess.run(probe, capture_output=True, text=True, check=False)
    if out.returncode:
        print(f"pip install {COPYDETECT_PACKAGE} into {PEERS_VENV} ...", flush=True)
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", COPYDETECT_PACKAGE],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode:
            return {"error": f"pip install failed: {proc.stderr.strip()[-300:]}"}
        out = subprocess.run(probe, capture_output=True, text=True, check=False)
    if out.returncode:
        return {"error": f"copydetect does not import: {out.stderr.strip()[-300:]}"}
    return {"path": str(python), "version": f"copydetect {out.stdout.strip()}"}


def run_dolos(peer: dict[str, Any], corpus: Corpus, timeout: float) -> Run:
    out = corpus.root.parent / f"{corpus.root.name}.dolos.json"
    out.unlink(missing_ok=True)
    m = measure(
        [peer["path"], str(HERE / "dolos_run.mjs"), str(NODE_DIR), str(corpus.root), str(out)],
        corpus.root, timeout,
    )  # fmt: skip
    if m.rc != 0 or not out.exists():
        return Run("dolos", False, m.wall_s, m.peak_mib, error=f"exit {m.rc}: {m.stderr}")
    data = json.loads(out.read_text())
    matches = [
        Match(p["scanned"], f[0], f[1], p["indexed"], f[2], f[3])
        for p in data["pairs"]
        for f in p["fragments"]
    ]
    return Run("dolos", True, m.wall_s, m.peak_mib, matches)


def run_copydetect(peer: dict[str, Any], corpus: Corpus, timeout: float) -> list[Run]:
    out = corpus.root.parent / f"{corpus.root.name}.copydetect.json"
    out.unlink(missing_ok=True)
    m = measure(
        [peer["path"], str(HERE / "copydetect_run.py"), str(corpus.root), str(out)],
        corpus.root, timeout,
    )  # fmt: skip
    if m.rc != 0 or not out.exists():
        return [Run("copydetect", False, m.wall_s, m.peak_mib, error=f"exit {m.rc}: {m.stderr}")]
    data = json.loads(out.read_text())
    shown: list[Match] = []
    every: list[Match] = []
    for p in data["pairs"]:
        ms = [Match(p["scanned"], a, b, p["indexed"]) for a, b in p["scanned_lines"]]
        every.extend(ms)
        if p["similarity"] > data["display_t"]:
            shown.extend(ms)
    return [
        Run("copydetect", True, m.wall_s, m.peak_mib, shown),
        Run("copydetect (every pair)", True, m.wall_s, m.peak_mib, every),
    ]


# -- scoring -----------------------------------------------------------------------------------


def _union(ranges: Iterable[tuple[int, int]]) -> set[int]:
    lines: set[int] = set()
    for a, b in ranges:
        lines.update(range(min(a, b), max(a, b) + 1))
    return lines


def score(run: Run, corpus: Corpus) -> dict[str, Any]:
    frags = corpus.fragments
    by_host: dict[str, list[Match]] = defaultdict(list)
    for m in run.matches:
        by_host[m.host].append(m)
    per_type: dict[str, list[int]] = {t: [0, 0] for t in TYPES}
    per_lang: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    wrong_source = 0
    source_lines_right = 0
    half_covered = 0  # found, with at least half the fragment's lines inside right matches
    missed: list[dict[str, Any]] = []
    for f in frags:
        over = [m for m in by_host.get(f["host"], []) if m.start <= f["end"] and f["start"] <= m.end]
        right = [m for m in over if m.source == f["source"]]
        hit = bool(right)
        covered = _union((max(m.start, f["start"]), min(m.end, f["end"])) for m in right)
        half_covered += len(covered) * 2 >= f["end"] - f["start"] + 1
        per_type[f["type"]][0] += hit
        per_type[f["type"]][1] += 1
        per_lang[f["language"]][0] += hit
        per_lang[f["language"]][1] += 1
        if not hit:
            wrong_source += bool(over)
            missed.append(
                {k: f[k] for k in ("id", "type", "host", "start", "end", "source", "source_start")}
                | {"overlapping_matches": len(over)}
            )
        elif any(
            m.source_start <= f["source_end"] and f["source_start"] <= m.source_end for m in right
        ):
            source_lines_right += 1
    planted: dict[str, set[int]] = defaultdict(set)
    for f in frags:
        planted[f["host"]].update(range(f["start"], f["end"] + 1))
    reported = inside = 0
    files_flagged_untouched = 0
    for host, ms in by_host.items():
        lines = _union((m.start, m.end) for m in ms)
        reported += len(lines)
        inside += len(lines & planted.get(host, set()))
        files_flagged_untouched += host not in planted
    planted_total = sum(len(v) for v in planted.values())
    found = sum(v[0] for v in per_type.values())
    return {
        "recall": {t: v[0] / v[1] if v[1] else 0.0 for t, v in per_type.items()},
        "found": {t: v for t, v in per_type.items()},
        "recall_all": found / len(frags) if frags else 0.0,
        "recall_half_covered": half_covered / len(frags) if frags else 0.0,
        "recall_by_language": {k: v[0] / v[1] for k, v in sorted(per_lang.items())},
        "line_precision": inside / reported if reported else 0.0,
        "line_recall": inside / planted_total if planted_total else 0.0,
        "reported_lines": reported,
        "matches": len(run.matches),
        "found_with_source_lines": source_lines_right,
        "missed_wrong_source": wrong_source,
        "untouched_files_flagged": files_flagged_untouched,
        "missed": missed,
    }


# -- scale -------------------------------------------------------------------------------------


def build_scale(corpus: Corpus, lines_wanted: int) -> dict[str, Any]:
    """A ``lines_wanted``-line index tree of distinct real code and a repository of renamed
    copies of the corpus's scanned side."""
    base = PROV / f"scale-{lines_wanted}"
    index_dir, repo_dir = base / "index", base / "repo"
    stamp = base / "built.json"
    key = f"{corpus.truth['key']}/3"
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
        return dict(json.loads(stamp.read_text()))
    shutil.rmtree(base, ignore_errors=True)
    total = files = 0
    hosts = {
        p.relative_to(corpus.root / "scanned").as_posix()
        for p in (corpus.root / "scanned").rglob("*")
    }
    sources = [(p, rel) for p, rel, _ in stdlib_files(skip=False)]
    sources += package_files(INDEXED_PACKAGES) + package_files(HOST_PACKAGES)
    sources = [(p, rel) for p, rel in sources if rel not in hosts]
    copy = 0
    while total < lines_wanted:
        before = total
        for path, rel in sources:
            if total >= lines_wanted:
                break
            data = path.read_bytes()
            if total + data.count(b"\n") > lines_wanted * 1.02:
                continue  # keep near the size asked for
            if copy:
                data += f"\n{'#' if path.suffix == '.py' else '//'} copy {copy}\n".encode()
            dest = index_dir / (f"copy{copy}/" if copy else "") / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            total += data.count(b"\n")
            files += 1
        copy += 1
        if total == before:
            break
    index_info = {"files": files, "lines": total, "copies": copy}
    total = files = 0
    scanned = sorted(p for p in (corpus.root / "scanned").rglob("*") if p.is_file())
    copy = 0
    while total < lines_wanted:
        for path in scanned:
            sub = path.relative_to(corpus.root / "scanned")
            dest = repo_dir / f"copy{copy:03d}" / sub.parent / f"{sub.stem}_c{copy}{sub.suffix}"
            mark = "#" if path.suffix == ".py" else "//"
            data = path.read_bytes() + f"\n{mark} copy {copy}\n".encode()
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            total += data.count(b"\n")
            files += 1
        copy += 1
    info = {
        "key": key,
        "index": index_info,
        "repo": {"files": files, "lines": total, "copies": copy},
    }
    stamp.write_text(json.dumps(info))
    return info


def run_scale(corpus: Corpus, lines_wanted: int, timeout: float) -> dict[str, Any]:
    info = build_scale(corpus, lines_wanted)
    base = PROV / f"scale-{lines_wanted}"
    index = base / "custodes-index"
    report = base / "custodes.json"
    for stale in (index, report):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    print(
        f"  index tree: {info['index']['files']} files, {info['index']['lines']:,} lines; "
        f"repository: {info['repo']['files']} files, {info['repo']['lines']:,} lines",
        flush=True,
    )
    add = measure(
        [str(CUSTODES), "index", "add", "index", "--collection", COLLECTION, "--index", str(index)],
        base, timeout,
    )  # fmt: skip
    result: dict[str, Any] = {"tree": info}
    result["index_add"] = {"wall_s": add.wall_s, "peak_mib": add.peak_mib, "rc": add.rc}
    print(f"  custodes index add: {add.wall_s:.1f} s, {add.peak_mib:.0f} MiB (exit {add.rc})")
    if add.rc != 0:
        result["index_add"]["error"] = add.stderr
        print(f"    {add.stderr.strip()[-500:]}")
        return result
    policy = _policy(base)
    scan = measure(
        [str(CUSTODES), "scan", "repo", "--index", str(index), "--policy", str(policy),
         "--format", "json", "--no-ledger", "--output", str(report)], base, timeout,
    )  # fmt: skip
    findings = 0
    if report.exists():
        with contextlib.suppress(ValueError):
            data = json.loads(report.read_text())
            findings = sum(1 for f in data.get("findings", []) if f.get("kind") == "provenance")
    result["scan"] = {
        "wall_s": scan.wall_s, "peak_mib": scan.peak_mib, "rc": scan.rc, "findings": findings,
        "index_bytes": _size(index),
    }  # fmt: skip
    print(
        f"  custodes scan (provenance only): {scan.wall_s:.1f} s, {scan.peak_mib:.0f} MiB "
        f"(exit {scan.rc}), {findings} provenance findings; index {_size(index) / 2**20:.0f} MiB"
    )
    if scan.rc not in (0, 1):
        result["scan"]["error"] = scan.stderr
        print(f"    {scan.stderr.strip()[-500:]}")
        return result
    full = measure(
        [str(CUSTODES), "scan", "repo", "--index", str(index), "--format", "json",
         "--no-ledger", "--output", str(report)], base, timeout,
    )  # fmt: skip
    result["scan_enterprise"] = {"wall_s": full.wall_s, "peak_mib": full.peak_mib, "rc": full.rc}
    print(
        f"  custodes scan (enterprise pack): {full.wall_s:.1f} s, {full.peak_mib:.0f} MiB "
        f"(exit {full.rc})"
    )
    return result


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


# -- report ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0.0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) / 1024**2
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
        check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "custodes_commit": commit,
    }  # fmt: skip


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*header))
    for row in rows:
        print(fmt.format(*row))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _targets(scores: dict[str, dict[str, Any]], runs: dict[str, Run]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    s = scores.get("custodes")
    if s is not None:
        for t, want in TARGET_RECALL.items():
            targets[f"recall {t} >= {want}"] = (s["recall"][t], s["recall"][t] >= want)
        targets[f"line precision >= {TARGET_LINE_PRECISION}"] = (
            s["line_precision"], s["line_precision"] >= TARGET_LINE_PRECISION,
        )  # fmt: skip
    c = runs.get("custodes")
    for peer, want in (("dolos", TARGET_VS_DOLOS), ("copydetect", TARGET_VS_COPYDETECT)):
        p = runs.get(peer)
        if c is not None and c.ok and p is not None and p.ok and c.wall_s > 0:
            ratio = p.wall_s / c.wall_s
            targets[f"{peer} time / custodes time >= {want:g}"] = (ratio, ratio >= want)
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~10%% corpus (and 100k-line scale)")
    parser.add_argument("--scale", action="store_true", help="also time custodes on 1M lines")
    parser.add_argument("--scale-only", action="store_true", help="only the 1M-line runs")
    parser.add_argument("--scale-lines", type=int, default=None, help="1,000,000 (quick 100,000)")
    parser.add_argument("--indexed-lines", type=int, default=None, help="140,000 (quick 14,000)")
    parser.add_argument("--scanned-lines", type=int, default=None, help="150,000 (quick 15,000)")
    parser.add_argument("--per-type", type=int, default=None, help="fragments per clone type (150; quick 20)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--timeout", type=float, default=1800, help="per tool run, seconds")
    parser.add_argument("--tools", default="custodes,dolos,copydetect")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    quick = args.quick
    indexed_lines = args.indexed_lines or (14_000 if quick else 140_000)
    scanned_lines = args.scanned_lines or (15_000 if quick else 150_000)
    per_type = args.per_type or (20 if quick else 150)
    scale_lines = args.scale_lines or (100_000 if quick else 1_000_000)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]

    info = machine()
    print("== custodes provenance benchmark")
    for k, v in info.items():
        print(f"  {k}: {v}")
    results: dict[str, Any] = {"machine": info}
    if not CUSTODES.exists():
        print(f"  {CUSTODES} missing: run `make install` first")
        return 2

    generator = clone_generator()
    t0 = time.perf_counter()
    corpus = build_corpus(
        "corpus-quick" if quick else "corpus", indexed_lines, scanned_lines, per_type,
        args.seed, generator,
    )  # fmt: skip
    tr = corpus.truth
    print(
        f"\ncorpus {corpus.root.relative_to(ROOT)} ({time.perf_counter() - t0:.1f} s): "
        f"indexed {tr['indexed']['files']} files, {tr['indexed']['lines']:,} lines "
        f"(py {tr['by_language']['indexed']['python']:,}, js {tr['by_language']['indexed']['javascript']:,}); "
        f"scanned {tr['scanned']['files']} files, {tr['scanned']['lines']:,} lines "
        f"(py {tr['by_language']['scanned']['python']:,}, js {tr['by_language']['scanned']['javascript']:,}), "
        f"{tr['scanned']['untouched']} untouched; {len(tr['fragments'])} fragments "
        f"({per_type} per type, {sum(f['end'] - f['start'] + 1 for f in tr['fragments']):,} lines); "
        f"clones by {tr['params']['generator']}"
    )
    results["corpus"] = {k: v for k, v in tr.items() if k != "fragments"}

    if not args.scale_only:
        peers: dict[str, dict[str, Any]] = {}
        if "dolos" in tools:
            peers["dolos"] = ensure_dolos()
        if "copydetect" in tools:
            peers["copydetect"] = ensure_copydetect()
        for tool, peer in peers.items():
            print(f"  {tool}: {peer.get('version') or 'UNAVAILABLE: ' + peer['error']}")
        results["peers"] = {k: v.get("version", v.get("error")) for k, v in peers.items()}

        runs: dict[str, Run] = {}
        for tool in tools:
            print(f"\nrunning {tool} ...", flush=True)
            try:
                if tool == "custodes":
                    got = [run_custodes(corpus, args.timeout)]
                elif "error" in peers.get(tool, {"error": "unknown tool"}):
                    got = [Run(tool, False, error=peers.get(tool, {}).get("error", "unknown tool"))]
                elif tool == "dolos":
                    got = [run_dolos(peers[tool], corpus, args.timeout)]
                else:
                    got = run_copydetect(peers[tool], corpus, args.timeout)
            except subprocess.TimeoutExpired:
                got = [Run(tool, False, args.timeout, error=f"timed out after {args.timeout:.0f} s")]
            for run in got:
                runs[run.tool] = run
                state = f"{run.wall_s:.1f} s, {run.peak_mib:.0f} MiB"
                print(f"  {run.tool}: {state}" + ("" if run.ok else f", FAILED: {run.error.strip()[-800:]}"))
                for part, v in run.parts.items():
                    print(f"    {part}: {v['wall_s']:.1f} s, {v['peak_mib']:.0f} MiB")
                if run.note:
                    print(f"    {run.note}")

        scores = {name: score(run, corpus) for name, run in runs.items() if run.ok}
        print()
        rows = []
        for name, s in scores.items():
            run = runs[name]
            rows.append(
                [name, *(f"{s['recall'][t]:.3f}" for t in TYPES), f"{s['recall_all']:.3f}",
                 f"{s['recall_half_covered']:.3f}", f"{s['line_precision']:.3f}", f"{s['line_recall']:.3f}",
                 f"{run.wall_s:.1f}", f"{run.peak_mib:.0f}"]
            )  # fmt: skip
        table(
            rows,
            ["tool", "recall T1", "recall T2", "recall T3", "recall all", "½ covered", "line prec.",
             "line recall", "wall s", "peak MiB"],
        )  # fmt: skip
        for name, s in scores.items():
            by_lang = ", ".join(f"{k} {v:.3f}" for k, v in s["recall_by_language"].items())
            print(
                f"  {name}: {s['matches']} matches over {s['reported_lines']:,} lines; recall by "
                f"language {by_lang}; {s['missed_wrong_source']} missed fragments overlapped by a "
                f"match naming another file; {s['untouched_files_flagged']} files without "
                f"fragments flagged; found with overlapping source lines: "
                f"{s['found_with_source_lines']}"
            )
        if "custodes" in scores:
            for miss in scores["custodes"]["missed"][:15]:
                print(f"    custodes missed {miss}")

        print("\n== targets")
        c = runs.get("custodes")
        targets = _targets(scores, runs)
        for what, (value, ok) in targets.items():
            print(f"  {what}: {value:.3f} {verdict(ok)}")
        if c is not None and c.ok:
            for name in ("dolos", "copydetect"):
                if name not in runs or not runs[name].ok:
                    print(f"  {name} time / custodes time: not measured")
        results["runs"] = {
            name: {"ok": r.ok, "wall_s": r.wall_s, "peak_mib": r.peak_mib, "parts": r.parts,
                   "error": r.error, "note": r.note, "score": scores.get(name)}
            for name, r in runs.items()
        }  # fmt: skip
        results["targets"] = {k: {"value": v, "met": ok} for k, (v, ok) in targets.items()}

    if args.scale or args.scale_only:
        print(f"\n== scale: {scale_lines:,}-line index and {scale_lines:,}-line repository")
        scale = run_scale(corpus, scale_lines, args.timeout)
        results["scale"] = scale
        for step in ("index_add", "scan", "scan_enterprise"):
            if step in scale and scale[step]["rc"] in (0, 1):
                ok = scale[step]["wall_s"] < TARGET_SCALE_S
                what = {"index_add": "index add", "scan": "scan (provenance only)",
                        "scan_enterprise": "scan (enterprise pack)"}[step]  # fmt: skip
                print(f"  {what} < {TARGET_SCALE_S:.0f} s: {scale[step]['wall_s']:.1f} s {verdict(ok)}")

    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
