"""Python imports and calls as :class:`~custodes.detectors.rules_code.Site` records.

One pass over the syntax tree in source order keeps what each name stands for: imports
(``import requests as r``, ``from urllib import request``) and simple assignments
(``client = OpenAI()``, ``with httpx.Client() as c``). The pass ignores control flow and
scopes — a name means what it was last bound to above — which is right for the code these
rules look for and never needs the program to run. It also follows, per name, which calls'
results flowed into it (``reply = client.chat.completions.create(…)`` …
``exec(reply.choices[0].message.content)``), so a rule can ask where an argument came from.

Source that does not parse as a whole (a diff hunk, a template) is read statement by line,
so a hunk's added calls are still seen.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from custodes.detectors.rules_code import DYNAMIC, EVERYTHING, Reading, Site

__all__ = ["python_sites"]

_FORMAT_METHODS: Final = frozenset({"format", "format_map"})


def python_sites(text: str, reading: Reading = EVERYTHING) -> tuple[list[Site], bytes]:
    """The sites of ``text`` and its UTF-8 bytes (the sites' offsets index those bytes)."""
    data = text.encode("utf-8", "surrogatepass")
    tree = _parse(text)
    if tree is not None:
        reader = _Reader(data, reading)
        try:
            reader.visit(tree)
        except RecursionError:
            return [], data
        return reader.sites, data
    return list(_line_by_line(text, data, reading)), data


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _line_by_line(text: str, data: bytes, reading: Reading) -> Iterator[Site]:
    reader = _Reader(data, reading)
    for index, line in enumerate(text.split("\n")):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tree = _parse(stripped)
        if tree is None:
            continue
        reader.line_offset = index
        reader.column_offset = len(line[: len(line) - len(line.lstrip())].encode("utf-8", "surrogatepass"))
        try:
            reader.visit(tree)
        except RecursionError:
            continue
    yield from reader.sites


class _Reader(ast.NodeVisitor):
    def __init__(self, data: bytes, reading: Reading) -> None:
        self.reading = reading
        self.sites: list[Site] = []
        self.bindings: dict[str, str] = {}
        self.origins: dict[str, frozenset[str]] = {}
        self.line_offset = 0
        self.column_offset = 0
        # Byte offset where each line starts: ast columns are UTF-8 byte offsets in their line.
        self.line_starts = [0]
        for line in data.splitlines(keepends=True):
            self.line_starts.append(self.line_starts[-1] + len(line))

    # -- names ---------------------------------------------------------------------------------

    def qualify(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.bindings.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualify(node.value)
            return f"{base}.{node.attr}" if base is not None else None
        if isinstance(node, ast.Call):
            base = self.qualify(node.func)
            return f"{base}()" if base is not None else None
        if isinstance(node, ast.Await):
            return self.qualify(node.value)
        return None

    def origins_of(self, node: ast.AST) -> frozenset[str]:
        if not self.reading.origins:
            return frozenset()
        found: set[str] = set()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                name = self.qualify(sub.func)
                if name is not None:
                    found.add(name)
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                found |= self.origins.get(sub.id, frozenset())
        return frozenset(found)

    def bind(self, target: ast.AST, value: ast.expr | None) -> None:
        if isinstance(target, ast.Name):
            name = self.qualify(value) if value is not None else None
            if name is None or name == target.id:
                self.bindings.pop(target.id, None)
            else:
                self.bindings[target.id] = name
            if value is None:
                self.origins.pop(target.id, None)
            else:
                self.origins[target.id] = self.origins_of(value)
        elif isinstance(target, ast.Tuple | ast.List):
            # Unpacking: each name may hold any part of the value.
            for element in target.elts:
                inner = element.value if isinstance(element, ast.Starred) else element
                if isinstance(inner, ast.Name):
                    self.bindings.pop(inner.id, None)
                    if value is not None:
                        self.origins[inner.id] = self.origins_of(value)

    # -- traversal -----------------------------------------------------------------------------

    def visit(self, node: ast.AST) -> None:
        # NodeVisitor looks a handler up by name for every node; a table by type is several
        # times faster, and leaves (names, constants, operators) are not descended into.
        handler = _HANDLERS.get(type(node))
        if handler is not None:
            handler(self, node)
        elif not isinstance(node, _LEAVES):
            self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> None:
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    # -- statements ----------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.bindings[alias.asname] = alias.name
            else:
                top = alias.name.split(".", 1)[0]
                self.bindings.pop(top, None)
            self.sites.append(self.site(node, "import", alias.name, module=alias.name))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        for alias in node.names:
            if alias.name == "*":
                self.sites.append(self.site(node, "import", module, module=module))
                continue
            full = f"{module}.{alias.name}" if node.module else module + alias.name
            self.bindings[alias.asname or alias.name] = full
            self.sites.append(self.site(node, "import", full, module=module))

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)
            self.bind(target, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)
        self.bind(node.target, node.value)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.bind(node.target, node.value)

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.bind(item.optional_vars, item.context_expr)
        for statement in node.body:
            self.visit(statement)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        if isinstance(node.target, ast.Name):
            # An item of what was iterated: not the iterable itself, but from the same calls.
            self.bindings.pop(node.target.id, None)
            self.origins[node.target.id] = self.origins_of(node.iter)
        for statement in [*node.body, *node.orelse]:
            self.visit(statement)

    # -- calls ---------------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualify(node.func)
        if name is not None:
            keywords: dict[str, object] = {}
            open_keywords = False
            formatted: set[str | int] = set()
            for keyword in node.keywords:
                if keyword.arg is None:
                    open_keywords = True
                    continue
                keywords[keyword.arg] = _literal(keyword.value)
                if self.reading.formatting and _formatted(keyword.value):
                    formatted.add(keyword.arg)
            positional = [a for a in node.args if not isinstance(a, ast.Starred)]
            if any(isinstance(a, ast.Starred) for a in node.args):
                open_keywords = True
            for index, argument in enumerate(node.args):
                if (
                    self.reading.formatting
                    and not isinstance(argument, ast.Starred)
                    and _formatted(argument)
                ):
                    formatted.add(index)
            first = positional[0] if positional and node.args[0] is positional[0] else None
            self.sites.append(
                self.site(
                    node,
                    "call",
                    name,
                    keywords=keywords,
                    open_keywords=open_keywords,
                    dynamic=frozenset(
                        i
                        for i, a in enumerate(node.args)
                        if isinstance(a, ast.Starred) or not _is_literal(a)
                    ),
                    first_origins=self.origins_of(first) if first is not None else frozenset(),
                    formatted=frozenset(formatted),
                )
            )
        self.generic_visit(node)

    def site(
        self,
        node: ast.stmt | ast.expr,
        kind: str,
        name: str,
        *,
        module: str = "",
        keywords: dict[str, object] | None = None,
        open_keywords: bool = False,
        dynamic: frozenset[int] = frozenset(),
        first_origins: frozenset[str] = frozenset(),
        formatted: frozenset[str | int] = frozenset(),
    ) -> Site:
        line = node.lineno + self.line_offset
        end_lineno = node.end_lineno or node.lineno
        end_col = node.end_col_offset if node.end_col_offset is not None else node.col_offset
        return Site(
            kind=kind,
            name=name,
            line=line,
            end_line=end_lineno + self.line_offset,
            start=self.line_starts[line - 1] + node.col_offset + self._indent(node.lineno),
            end=self.line_starts[end_lineno + self.line_offset - 1]
            + end_col
            + self._indent(end_lineno),
            module=module,
            keywords=keywords or {},
            open_keywords=open_keywords,
            dynamic=dynamic,
            first_origins=first_origins,
            formatted=formatted,
        )

    def _indent(self, lineno: int) -> int:
        # Line-by-line reading strips the indent of the one line it parses.
        return self.column_offset if lineno == 1 else 0


_HANDLERS: Final[dict[type[ast.AST], Callable[[_Reader, Any], None]]] = {
    ast.Import: _Reader.visit_Import,
    ast.ImportFrom: _Reader.visit_ImportFrom,
    ast.Assign: _Reader.visit_Assign,
    ast.AnnAssign: _Reader.visit_AnnAssign,
    ast.NamedExpr: _Reader.visit_NamedExpr,
    ast.With: _Reader.visit_With,
    ast.AsyncWith: _Reader.visit_With,
    ast.For: _Reader.visit_For,
    ast.AsyncFor: _Reader.visit_For,
    ast.Call: _Reader.visit_Call,
}
_LEAVES: Final = (
    ast.Name,
    ast.Constant,
    ast.expr_context,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
    ast.boolop,
    ast.Pass,
    ast.Break,
    ast.Continue,
)


def _literal(node: ast.expr) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
        and not isinstance(node.operand.value, bool)
    ):
        return -node.operand.value
    return DYNAMIC


def _is_literal(node: ast.expr) -> bool:
    """Whether ``node`` is fixed in the source: constants, and containers and sums of them."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.JoinedStr):
        return all(isinstance(v, ast.Constant) for v in node.values)
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_literal(k) for k in node.keys) and all(
            _is_literal(v) for v in node.values
        )
    if isinstance(node, ast.BinOp):
        return _is_literal(node.left) and _is_literal(node.right)
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand)
    return False


def _is_text(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or isinstance(
        node, ast.JoinedStr
    )


def _formatted(node: ast.expr) -> bool:
    """Whether ``node`` builds text from values: an f-string, ``+``/``%`` on text, ``.format``."""
    return any(_formats(sub) for sub in _walk_expr(node))


def _formats(node: ast.AST) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Add):
            return (_is_text(node.left) or _is_text(node.right)) and not (
                _is_literal(node.left) and _is_literal(node.right)
            )
        if isinstance(node.op, ast.Mod):
            return _is_text(node.left) and not _is_literal(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in _FORMAT_METHODS and bool(node.args or node.keywords)
    return False


def _walk_expr(node: ast.AST) -> Iterable[ast.AST]:
    # A lambda's body runs later, with other values: it does not build this argument.
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if not isinstance(current, ast.Lambda):
            stack.extend(ast.iter_child_nodes(current))
