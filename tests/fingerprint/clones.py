"""Clones of real code, made with the real tokenizer, for provenance tests and benchmarks.

The classic clone types (Roy and Cordy's taxonomy, used by BigCloneBench):

* :func:`type1`: the same tokens, laid out differently: spacing, indentation, line breaks,
  comments and blank lines added or removed. Each change is checked with the tokenizer and
  dropped if it changed a token.
* :func:`type2`: identifiers renamed consistently (never keywords, builtins the language needs,
  or names on import lines) and literals changed, plus Type-1 changes.
* :func:`type3`: about ``ratio`` of the statement lines inserted, deleted or modified, plus
  Type-2 changes.

:func:`pick_fragment` cuts a fragment of N lines out of a real file, :func:`splice` puts it
into another one and says which lines it occupies, and :func:`corpus` lists real files on this
machine (CPython's standard library, the JavaScript of node's bundled npm, C headers and
sources). Everything is driven by the ``random.Random`` passed in, so a seed reproduces a case.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import random
import re
import shutil
import sysconfig
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from custodes.fingerprint import TokenKind, boilerplate_lines, classify, token_spans, tokenize

__all__ = [
    "Fragment",
    "Spliced",
    "corpus",
    "pick_fragment",
    "splice",
    "type1",
    "type2",
    "type3",
]

_HASH_COMMENTS = {"python", "ruby", "shell"}
_SEMICOLON = {
    "c",
    "cpp",
    "java",
    "csharp",
    "javascript",
    "typescript",
    "tsx",
    "rust",
    "php",
    "dart",
}
_WORDS = [
    "note",
    "check",
    "value",
    "handle",
    "update",
    "keep",
    "first",
    "later",
    "result",
    "state",
    "cache",
    "entry",
    "order",
    "limit",
    "buffer",
    "index",
    "count",
    "total",
    "item",
    "node",
    "path",
    "name",
    "size",
    "flag",
    "error",
    "retry",
    "guard",
    "merge",
    "split",
    "scan",
    "parse",
    "emit",
    "load",
    "store",
    "fetch",
    "apply",
    "reset",
    "clear",
]
_BUILTINS: dict[str, frozenset[str]] = {
    "python": frozenset(dir(builtins)) | {"self", "cls", "__name__", "__file__", "super"},
    "javascript": frozenset(
        {
            "console",
            "require",
            "module",
            "exports",
            "Object",
            "Array",
            "JSON",
            "Math",
            "Promise",
            "String",
            "Number",
            "Boolean",
            "Error",
            "TypeError",
            "undefined",
            "process",
            "Buffer",
            "Symbol",
            "Map",
            "Set",
            "WeakMap",
            "RegExp",
            "Date",
            "window",
            "document",
            "globalThis",
            "arguments",
            "prototype",
            "length",
            "push",
            "then",
            "catch",
            "resolve",
            "reject",
            "constructor",
            "toString",
            "hasOwnProperty",
        }
    ),
    "c": frozenset(
        {
            "printf",
            "fprintf",
            "sprintf",
            "snprintf",
            "malloc",
            "calloc",
            "realloc",
            "free",
            "memcpy",
            "memset",
            "memcmp",
            "strlen",
            "strcmp",
            "strncmp",
            "strcpy",
            "strncpy",
            "NULL",
            "size_t",
            "ssize_t",
            "uint8_t",
            "uint16_t",
            "uint32_t",
            "uint64_t",
            "int8_t",
            "int16_t",
            "int32_t",
            "int64_t",
            "FILE",
            "stderr",
            "stdout",
            "errno",
            "assert",
            "sizeof",
            "EOF",
        }
    ),
}
_BUILTINS["typescript"] = _BUILTINS["tsx"] = _BUILTINS["javascript"]
_BUILTINS["cpp"] = _BUILTINS["c"] | {"std", "string", "vector", "map", "cout", "endl"}
_BUILTINS["java"] = frozenset({"System", "String", "Object", "Integer", "List", "Map", "out"})
_BUILTINS["go"] = frozenset({"fmt", "len", "cap", "make", "new", "append", "copy", "panic"})
_BUILTINS["rust"] = frozenset({"String", "Vec", "Option", "Some", "None", "Ok", "Err", "Box"})
_BUILTINS["php"] = frozenset({"$this"})
_BUILTINS["ruby"] = frozenset({"puts", "require", "attr_accessor", "attr_reader", "new"})


# -- line structure ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where tokens are, and which line starts and ends fall outside every token."""

    text: str
    spans: list[tuple[TokenKind, int, int]]
    line_starts: list[int]  # offset of each line's first character
    free_start: list[bool]  # line i (0-based) does not start inside a token
    free_end: list[bool]  # line i does not end inside a token

    @property
    def lines(self) -> int:
        return len(self.line_starts)


def _layout(text: str, language: str | None) -> _Layout:
    spans = token_spans(text, language)
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    free_start = [True] * len(starts)
    free_end = [True] * len(starts)
    for _kind, start, end in spans:
        if "\n" in text[start:end]:
            first = _line_index(starts, start)
            last = _line_index(starts, end - 1)
            for i in range(first, last + 1):
                if i > first:
                    free_start[i] = False
                if i < last:
                    free_end[i] = False
    return _Layout(text, spans, starts, free_start, free_end)


def _line_index(starts: Sequence[int], offset: int) -> int:
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= offset:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _texts(code: str, language: str | None) -> list[str]:
    return [token.text for token in tokenize(code, language)]


def _same_tokens(before: str, after: str, language: str | None) -> bool:
    return _texts(before, language) == _texts(after, language)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _comment(language: str | None, rng: random.Random) -> str:
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 6)))
    if language in _HASH_COMMENTS:
        return "# " + words
    if language in ("c", "cpp") and rng.random() < 0.5:
        return f"/* {words} */"
    return "// " + words


# -- Type 1 -----------------------------------------------------------------------------------


def type1(code: str, language: str | None, rng: random.Random) -> str:
    """``code`` laid out differently, with exactly the same tokens."""
    passes = [_respace, _reindent, _break_lines, _remove_comments, _add_comments, _blank_lines]
    rng.shuffle(passes)
    for change in passes:
        if rng.random() < 0.75:
            changed = change(code, language, rng)
            # A change that altered a token (two operators run together, a comment that a
            # lexer of this language does not know) is not a Type-1 change: drop it.
            if _same_tokens(code, changed, language):
                code = changed
    return code


def _respace(code: str, language: str | None, rng: random.Random) -> str:
    layout = _layout(code, language)
    out = []
    previous_end = 0
    spans = layout.spans
    for i, (kind, start, end) in enumerate(spans):
        gap = code[previous_end:start]
        if i and gap.strip(" \t") == "" and rng.random() < 0.3:
            before = spans[i - 1][0]
            words = {TokenKind.IDENTIFIER, TokenKind.KEYWORD, TokenKind.NUMBER}
            if (before in words and kind in words) or kind is TokenKind.STRING:
                gap = " " * rng.randint(1, 3)  # a space is needed (a string may have a prefix)
            else:
                gap = rng.choice(["", " ", "  "])
        out.append(gap)
        out.append(code[start:end])
        previous_end = end
    out.append(code[previous_end:])
    changed = "".join(out)
    # Line by line: keep only the lines whose tokens a lexer still reads the same.
    old_lines, new_lines = code.split("\n"), changed.split("\n")
    if len(old_lines) != len(new_lines):
        return code
    merged = [
        new if _same_tokens(old, new, language) else old
        for old, new in zip(old_lines, new_lines, strict=True)
    ]
    return "\n".join(merged)


def _reindent(code: str, language: str | None, rng: random.Random) -> str:
    layout = _layout(code, language)
    lines = code.split("\n")
    use_tabs = language != "python" and rng.random() < 0.5
    for i, line in enumerate(lines):
        if not layout.free_start[i]:
            continue
        indent = _indent(line)
        width = len(indent.expandtabs(4))
        # Whole indentation levels of four become levels of two (or tabs); what is left over
        # (an alignment) stays, so that deeper lines stay deeper.
        levels, rest = divmod(width, 4)
        lines[i] = ("\t" * levels if use_tabs else "  " * levels) + " " * rest + line[len(indent) :]
    return "\n".join(lines)


_OPENERS, _CLOSERS = frozenset("([{"), frozenset(")]}")


def _break_lines(code: str, language: str | None, rng: random.Random) -> str:
    layout = _layout(code, language)
    depth = 0
    cuts = []
    spans = layout.spans
    for i, (kind, start, end) in enumerate(spans):
        text = code[start:end]
        if kind is TokenKind.OPERATOR:
            if text in _OPENERS:
                depth += 1
            elif text in _CLOSERS:
                depth = max(0, depth - 1)
            elif text == "," and depth and i + 1 < len(spans) and rng.random() < 0.2:
                following = spans[i + 1][1]
                if "\n" not in code[end:following]:
                    cuts.append((end, following))
    lines_at = layout.line_starts
    for end, following in reversed(cuts):
        line = code[lines_at[_line_index(lines_at, end)] :]
        code = code[:end] + "\n" + _indent(line) + "        " + code[following:]
    return code


def _remove_comments(code: str, language: str | None, rng: random.Random) -> str:
    spans = _layout(code, language).spans
    out = []
    previous_end = 0
    bounds = [(start, end) for _k, start, end in spans] + [(len(code), len(code))]
    for start, end in bounds:
        gap = code[previous_end:start]
        if gap.strip() and rng.random() < 0.8:
            newlines = gap.count("\n")
            tail = gap.rsplit("\n", 1)[-1]
            gap = "\n" * newlines + _indent(tail) if newlines else " "
        out.append(gap)
        out.append(code[start:end])
        previous_end = end
    return "".join(out)


def _add_comments(code: str, language: str | None, rng: random.Random) -> str:
    if language is None:
        return code  # the generic lexer keeps comments as tokens
    layout = _layout(code, language)
    lines = code.split("\n")
    out = []
    for i, line in enumerate(lines):
        if layout.free_start[i] and line.strip() and rng.random() < 0.08:
            out.append(_indent(line) + _comment(language, rng))
        if (
            layout.free_end[i]
            and line.strip()
            and not line.rstrip().endswith("\\")
            and not line.lstrip().startswith("#")  # a preprocessor line, or a comment already
            and rng.random() < 0.08
        ):
            line = line.rstrip() + "  " + _comment(language, rng)
        out.append(line)
    return "\n".join(out)


def _blank_lines(code: str, language: str | None, rng: random.Random) -> str:
    layout = _layout(code, language)
    lines = code.split("\n")
    out = []
    for i, line in enumerate(lines):
        free = layout.free_start[i]
        if free and not line.strip() and rng.random() < 0.5:
            continue  # a blank line removed
        if free and rng.random() < 0.06:
            out.append("")
        out.append(line)
    return "\n".join(out)


# -- Type 2 -----------------------------------------------------------------------------------


def _new_name(original: str, taken: set[str], language: str | None, rng: random.Random) -> str:
    prefix = ""
    core = original
    while core and core[0] in "$@":
        prefix += core[0]
        core = core[1:]
    while True:
        parts = [rng.choice(_WORDS) for _ in range(rng.randint(1, 3))]
        if core[:1].isupper():
            name = "".join(p.capitalize() for p in parts)
        elif "_" in core.strip("_") or core.islower():
            name = "_".join(parts)
        else:
            name = parts[0] + "".join(p.capitalize() for p in parts[1:])
        name = prefix + name + (str(rng.randint(0, 99)) if rng.random() < 0.3 else "")
        if name not in taken and not keyword.iskeyword(name) and _is_name(name, language):
            taken.add(name)
            return name


def _is_name(name: str, language: str | None) -> bool:
    tokens = tokenize(name, language)
    return len(tokens) == 1 and tokens[0].kind is TokenKind.IDENTIFIER and tokens[0].text == name


_SIMPLE_STRING = re.compile(r"""^([rRbBuU]{0,2})(['"])([ \w.,:;!?/-]*)\2$""")
_SIMPLE_NUMBER = re.compile(r"^\d+(\.\d+)?$")


def type2(code: str, language: str | None, rng: random.Random) -> str:
    """``code`` with identifiers renamed consistently and literals changed, then Type-1."""
    tokens = tokenize(code, language)
    spans = token_spans(code, language)
    keywords = {t.text for t in tokens if t.kind is TokenKind.KEYWORD}
    names = {t.text for t in tokens if t.kind is TokenKind.IDENTIFIER}
    masked = boilerplate_lines(code, language)
    imported = {t.text for t in tokens if t.kind is TokenKind.IDENTIFIER and t.line in masked}
    keep = _BUILTINS.get(language or "", frozenset()) | imported
    taken = names | keywords
    renames = {}
    for name in sorted(names):
        if name in keep or (name.startswith("__") and name.endswith("__")):
            continue
        if rng.random() < 0.9:
            renames[name] = _new_name(name, taken, language, rng)
    out = []
    previous_end = 0
    for token, (kind, start, end) in zip(tokens, spans, strict=True):
        out.append(code[previous_end:start])
        text = code[start:end]
        if kind is TokenKind.IDENTIFIER:
            text = renames.get(text, text)
        elif kind is TokenKind.NUMBER and _SIMPLE_NUMBER.match(text) and rng.random() < 0.5:
            text = str(rng.randint(0, 999)) if "." not in text else f"{rng.uniform(0, 99):.2f}"
        elif kind is TokenKind.STRING and rng.random() < 0.5:
            match = _SIMPLE_STRING.match(text)
            if match and token.line not in masked:
                prefix, quote, _body = match.groups()
                text = prefix + quote + " ".join(rng.sample(_WORDS, rng.randint(1, 3))) + quote
        out.append(text)
        previous_end = end
    out.append(code[previous_end:])
    return type1("".join(out), language, rng)


# -- Type 3 -----------------------------------------------------------------------------------


def _statement_lines(code: str, language: str | None) -> list[int]:
    """0-based lines that hold one whole simple statement (safe to delete, modify, follow)."""
    layout = _layout(code, language)
    lines = code.split("\n")
    by_line: dict[int, list[str]] = {}
    for _kind, start, end in layout.spans:
        by_line.setdefault(_line_index(layout.line_starts, start), []).append(code[start:end])
    out = []
    for i, texts in sorted(by_line.items()):
        if not (layout.free_start[i] and layout.free_end[i]) or len(texts) < 2:
            continue
        opened = sum(t in _OPENERS for t in texts) - sum(t in _CLOSERS for t in texts)
        last = texts[-1]
        if opened or last in {":", "{", ",", "\\", "(", "[", "=", "+", "-", "&&", "||", "."}:
            continue
        if texts[0] in {"}", ")", "]", "else", "elif", "end", "case", "default", "#"}:
            continue
        if language == "python":
            following = next((lines[j] for j in range(i + 1, len(lines)) if lines[j].strip()), "")
            if len(_indent(following)) > len(_indent(lines[i])):
                continue
        out.append(i)
    return out


def _new_statement(language: str | None, names: Sequence[str], rng: random.Random) -> str:
    target = rng.choice(_WORDS) + "_" + rng.choice(_WORDS)
    source = rng.choice(names) if names else rng.choice(_WORDS)
    number = rng.randint(1, 99)
    if language == "php":
        target, source = "$" + target, source if source.startswith("$") else "$" + source
    declare = {
        "javascript": "const ",
        "typescript": "const ",
        "tsx": "const ",
        "rust": "let ",
        "kotlin": "val ",
        "scala": "val ",
        "swift": "let ",
        "c": "int ",
        "cpp": "auto ",
        "java": "int ",
        "csharp": "var ",
        "dart": "var ",
    }.get(language or "", "")
    assign = ":=" if language == "go" else "="
    end = ";" if language in _SEMICOLON else ""
    if rng.random() < 0.5:
        return f"{declare}{target} {assign} {source} + {number}{end}"
    return f"{declare}{target} {assign} {rng.choice(_WORDS)}({source}, {number}){end}"


_SWAPS = {"+": "-", "-": "+", "*": "+", "<": "<=", ">": ">=", "<=": "<", ">=": ">", "==": "!="}


def _modify(line: str, language: str | None, rng: random.Random) -> str:
    spans = token_spans(line, language)
    operators = [(s, e) for k, s, e in spans if k is TokenKind.OPERATOR and line[s:e] in _SWAPS]
    if operators and rng.random() < 0.5:
        start, end = rng.choice(operators)
        return line[:start] + _SWAPS[line[start:end]] + line[end:]
    names = [(s, e) for k, s, e in spans if k is TokenKind.IDENTIFIER]
    if names and rng.random() < 0.6:
        start, end = rng.choice(names)
        return f"{line[:start]}{rng.choice(_WORDS)}({line[start:end]}){line[end:]}"
    # Append a term before a statement's closing semicolon, or at its end.
    body = line.rstrip()
    end = ";" if body.endswith(";") else ""
    body = body[: len(body) - len(end)]
    return f"{body} + {rng.randint(1, 99)}{end}"


def type3(code: str, language: str | None, rng: random.Random, ratio: float = 0.15) -> str:
    """``code`` with about ``ratio`` of its statements inserted, deleted or modified, then Type-2."""
    candidates = statements = _statement_lines(code, language)
    lines = code.split("\n")
    if not candidates:  # no whole statement on a line (a table, a call over many lines)
        layout = _layout(code, language)
        candidates = sorted(
            {_line_index(layout.line_starts, start) for _k, start, _e in layout.spans}
            & {i for i in range(layout.lines) if layout.free_start[i] and layout.free_end[i]}
        )
    names = sorted({t.text for t in tokenize(code, language) if t.kind is TokenKind.IDENTIFIER})
    code_lines = sum(1 for line in lines if line.strip())
    edits = max(1, round(ratio * code_lines))
    chosen = sorted(rng.sample(candidates, min(edits, len(candidates))), reverse=True)
    for i in chosen:  # bottom up, so that earlier line numbers stay valid
        operation = rng.choice(("insert", "delete", "modify"))
        if operation == "delete" and i not in statements:
            operation = "modify"  # deleting a part of a statement would unbalance it
        if operation == "insert":
            lines.insert(i + 1, _indent(lines[i]) + _new_statement(language, names, rng))
        elif operation == "delete":
            del lines[i]
        else:
            lines[i] = _modify(lines[i], language, rng)
    return type2("\n".join(lines), language, rng)


# -- fragments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fragment:
    """Lines ``start_line``..``end_line`` (1-based, inclusive) of a file, as ``text``."""

    text: str
    start_line: int
    end_line: int


@dataclass(frozen=True)
class Spliced:
    """A host file with a fragment put in; the fragment occupies ``start_line``..``end_line``."""

    text: str
    start_line: int
    end_line: int


def pick_fragment(
    text: str,
    lines: int,
    rng: random.Random,
    language: str | None = None,
    *,
    min_tokens: int = 30,
    attempts: int = 50,
) -> Fragment | None:
    """A fragment of ``lines`` consecutive lines of ``text`` that holds ``min_tokens`` tokens or
    more of code (as lexed in the whole file: a docstring is one token; boilerplate lines left
    out), or None when ``attempts`` random tries find none."""
    all_lines = text.split("\n")
    if text.endswith("\n"):
        all_lines.pop()
    if len(all_lines) < lines:
        return None
    masked = boilerplate_lines(text, language)
    per_line = [0] * (len(all_lines) + 2)
    for token in tokenize(text, language):
        if token.line not in masked and token.line < len(per_line):
            per_line[token.line] += 1
    for _ in range(attempts):
        first = rng.randint(0, len(all_lines) - lines)
        if sum(per_line[first + 1 : first + lines + 1]) >= min_tokens:
            chunk = "\n".join(all_lines[first : first + lines]) + "\n"
            return Fragment(chunk, first + 1, first + lines)
    return None


def splice(host: str, fragment: str, rng: random.Random, language: str | None = None) -> Spliced:
    """``fragment`` put into ``host`` at a random line boundary outside any string or comment."""
    if not fragment.endswith("\n"):
        fragment += "\n"
    if host and not host.endswith("\n"):
        host += "\n"
    layout = _layout(host, language)
    host_lines = host.split("\n")[:-1] if host else []
    boundaries = [
        i for i in range(len(host_lines) + 1) if i >= layout.lines or layout.free_start[i]
    ]
    at = rng.choice(boundaries) if boundaries else 0
    before = "".join(line + "\n" for line in host_lines[:at])
    after = "".join(line + "\n" for line in host_lines[at:])
    count = fragment.count("\n")
    return Spliced(before + fragment + after, at + 1, at + count)


# -- real code --------------------------------------------------------------------------------


def npm_package() -> Path:
    """The npm client's package (its sources and bundled dependencies): real JavaScript.

    Found from the executable (``npm`` links to ``…/npm/bin/npm-cli.js`` both in node's own
    distribution and in Debian's package), so no npm command has to run. CI installs npm.
    """
    npm = shutil.which("npm")
    assert npm is not None, "npm is not installed: apt-get install npm (CI installs it)"
    package = Path(npm).resolve().parent.parent
    assert (package / "lib").is_dir(), f"npm's own sources are not in {package}"
    return package


def _readable(paths: Iterator[Path], language: str, limit: int) -> list[Path]:
    out = []
    for path in sorted(paths):
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) < 200 or classify(path.name, text) is not None:
            continue
        out.append(path)
        if len(out) >= limit:
            break
    return out


@functools.cache
def corpus(language: str, limit: int = 100_000) -> tuple[Path, ...]:
    """Real, hand-written files of ``language`` on this machine (python, javascript, c), sorted.

    Generated and minified files and files under 200 characters are left out. Empty for a
    language with no real code here.
    """
    if language == "python":
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        files = (p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)
        return tuple(_readable(files, language, limit))
    if language == "javascript":
        return tuple(_readable(npm_package().rglob("*.js"), language, limit))
    if language == "c":
        roots = [Path("/usr/include"), Path("/usr/share")]
        files = (p for root in roots if root.is_dir() for p in root.rglob("*.[ch]"))
        return tuple(_readable(files, language, limit))
    return ()
