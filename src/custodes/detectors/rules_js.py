"""JavaScript and TypeScript imports and calls as :class:`~custodes.detectors.rules_code.Site`.

The same idea as :mod:`rules_python`, over tree-sitter's syntax trees (the grammars ship as
wheels): ``require`` and ``import`` bind names to modules (``const {exec: run} =
require('node:child_process')`` makes ``run(…)`` a call of ``child_process.exec``),
``const client = new OpenAI()`` binds an instance, and the properties of an object literal
passed to a call are its keywords (``{rejectUnauthorized: false}``). tree-sitter recovers from
syntax errors, so a diff hunk or a partial file still yields the calls it holds.

A call ``f(…)`` is named ``f``; ``new F(…)`` is named ``new F``; what calling ``f`` returned is
``f()``, so ``client.chat.completions.create`` of the instance above is
``openai().chat.completions.create`` (a default import names the module itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Final

from tree_sitter import Language, Node, Parser, Query, QueryCursor

from custodes.detectors.rules_code import DYNAMIC, EVERYTHING, Reading, Site

__all__ = ["js_sites"]

_LITERAL_TYPES: Final = frozenset({"number", "true", "false", "null", "undefined"})
_WRAPPERS: Final = frozenset(
    {
        "parenthesized_expression",
        "await_expression",
        "as_expression",
        "satisfies_expression",
        "non_null_expression",
        "type_assertion",
    }
)


_QUERY: Final = """
(import_statement) @enter
(call_expression) @enter
(new_expression) @enter
(variable_declarator) @bind
(assignment_expression) @bind
"""


@cache
def _grammar(language: str) -> tuple[Parser, Query]:
    if language == "javascript":
        import tree_sitter_javascript

        grammar = Language(tree_sitter_javascript.language())
    else:
        import tree_sitter_typescript

        grammar = Language(
            tree_sitter_typescript.language_tsx()
            if language == "tsx"
            else tree_sitter_typescript.language_typescript()
        )
    return Parser(grammar), Query(grammar, _QUERY)


def js_sites(
    text: str, language: str, reading: Reading = EVERYTHING
) -> tuple[list[Site], bytes]:
    """The sites of ``text`` (``javascript``, ``typescript`` or ``tsx``) and its UTF-8 bytes."""
    data = text.encode("utf-8", "surrogatepass")
    parser, query = _grammar(language)
    tree = parser.parse(data)
    captures = QueryCursor(query).captures(tree.root_node)
    # The query finds the nodes in C; Python sees them in source order. A declarator binds
    # its names at its end, once the calls in its value have been read.
    events = [(n.start_byte, 0, n) for n in captures.get("enter", ())]
    events.extend((n.end_byte, 1, n) for n in captures.get("bind", ()))
    events.sort(key=lambda e: (e[0], e[1]))
    reader = _Reader(reading)
    for _, leaving, node in events:
        if leaving:
            reader.leave(node)
        else:
            reader.enter(node)
    return reader.sites, data


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def _string_value(node: Node) -> str | None:
    """The value of a string literal, or of a template without substitutions."""
    if node.type == "string":
        return "".join(_text(c) for c in node.named_children if c.type in ("string_fragment", "escape_sequence"))
    if node.type == "template_string" and not any(
        c.type == "template_substitution" for c in node.named_children
    ):
        return "".join(_text(c) for c in node.named_children)
    return None


def _module(name: str) -> str:
    return name.removeprefix("node:")


def _unwrap(node: Node) -> Node:
    while node.type in _WRAPPERS and node.named_child_count:
        inner = node.child_by_field_name("expression") or node.named_children[0]
        node = inner
    return node


class _Reader:
    def __init__(self, reading: Reading) -> None:
        self.reading = reading
        self.sites: list[Site] = []
        self.bindings: dict[str, str] = {}
        self.origins: dict[str, frozenset[str]] = {}

    # -- names ---------------------------------------------------------------------------------

    def require_of(self, node: Node) -> str | None:
        """The module of ``require('m')``, or None."""
        if node.type != "call_expression":
            return None
        function = node.child_by_field_name("function")
        arguments = node.child_by_field_name("arguments")
        if function is None or arguments is None or _text(function) != "require":
            return None
        first = arguments.named_children[0] if arguments.named_child_count else None
        value = _string_value(first) if first is not None else None
        return _module(value) if value is not None else None

    def qualify(self, node: Node | None) -> str | None:
        if node is None:
            return None
        node = _unwrap(node)
        kind = node.type
        if kind in ("identifier", "this", "super"):
            name = _text(node)
            return self.bindings.get(name, name)
        if kind == "member_expression":
            base = self.qualify(node.child_by_field_name("object"))
            prop = node.child_by_field_name("property")
            return f"{base}.{_text(prop)}" if base is not None and prop is not None else None
        if kind == "subscript_expression":
            index = node.child_by_field_name("index")
            key = _string_value(index) if index is not None else None
            base = self.qualify(node.child_by_field_name("object"))
            return f"{base}.{key}" if base is not None and key is not None else None
        if kind == "call_expression":
            module = self.require_of(node)
            if module is not None:
                return module
            base = self.qualify(node.child_by_field_name("function"))
            return f"{base}()" if base is not None else None
        if kind == "new_expression":
            base = self.qualify(node.child_by_field_name("constructor"))
            return f"{base}()" if base is not None else None
        return None

    def callee(self, node: Node) -> str | None:
        if node.type == "new_expression":
            base = self.qualify(node.child_by_field_name("constructor"))
            return f"new {base}" if base is not None else None
        return self.qualify(node.child_by_field_name("function"))

    def origins_of(self, node: Node) -> frozenset[str]:
        if not self.reading.origins:
            return frozenset()
        found: set[str] = set()
        stack = [node]
        while stack:
            current = stack.pop()
            if current.type in ("call_expression", "new_expression"):
                name = self.callee(current)
                if name is not None:
                    found.add(name)
            elif current.type == "identifier":
                found |= self.origins.get(_text(current), frozenset())
            elif current.type in ("arrow_function", "function_expression", "function"):
                continue  # runs later, with other values
            stack.extend(current.named_children)
        return frozenset(found)

    def bind(self, target: Node, value: Node | None) -> None:
        origins = self.origins_of(value) if value is not None else frozenset()
        if target.type == "identifier":
            name = _text(target)
            qualified = self.qualify(value) if value is not None else None
            if qualified is None or qualified == name:
                self.bindings.pop(name, None)
            else:
                self.bindings[name] = qualified
            self.origins[name] = origins
        elif target.type == "object_pattern":
            base = self.qualify(value) if value is not None else None
            for part in target.named_children:
                if part.type == "shorthand_property_identifier_pattern":
                    key = local = _text(part)
                elif part.type == "pair_pattern":
                    key_node = part.child_by_field_name("key")
                    local_node = part.child_by_field_name("value")
                    if key_node is None or local_node is None or local_node.type != "identifier":
                        continue
                    key, local = _string_value(key_node) or _text(key_node), _text(local_node)
                else:
                    continue
                if base is not None:
                    self.bindings[local] = f"{base}.{key}"
                else:
                    self.bindings.pop(local, None)
                self.origins[local] = origins
        elif target.type == "array_pattern":
            for part in target.named_children:
                if part.type == "identifier":
                    self.bindings.pop(_text(part), None)
                    self.origins[_text(part)] = origins

    # -- nodes ---------------------------------------------------------------------------------

    def enter(self, node: Node) -> None:
        kind = node.type
        if kind == "import_statement":
            self.read_import(node)
        elif kind in ("call_expression", "new_expression"):
            self.read_call(node)

    def leave(self, node: Node) -> None:
        if node.type == "variable_declarator":
            target, value = node.child_by_field_name("name"), node.child_by_field_name("value")
        else:
            target, value = node.child_by_field_name("left"), node.child_by_field_name("right")
        if target is not None:
            self.bind(target, value)

    def read_import(self, node: Node) -> None:
        source = node.child_by_field_name("source")
        clause = next(
            (c for c in node.named_children if c.type in ("import_clause", "import_require_clause")),
            None,
        )
        if clause is not None and clause.type == "import_require_clause":
            source = next((c for c in clause.named_children if c.type == "string"), source)
        value = _string_value(source) if source is not None else None
        if value is None:
            return
        module = _module(value)
        names: list[tuple[str, str]] = []  # (local name, what it stands for)
        for part in clause.named_children if clause is not None else ():
            if part.type == "identifier":  # default import, or `import x = require(…)`
                names.append((_text(part), module))
            elif part.type == "namespace_import":
                names.extend((_text(c), module) for c in part.named_children if c.type == "identifier")
            elif part.type == "named_imports":
                for spec in part.named_children:
                    if spec.type != "import_specifier":
                        continue
                    imported = spec.child_by_field_name("name")
                    alias = spec.child_by_field_name("alias") or imported
                    if imported is not None and alias is not None:
                        key = _string_value(imported) or _text(imported)
                        names.append((_text(alias), f"{module}.{key}"))
        for local, meaning in names:
            self.bindings[local] = meaning
        for meaning in {meaning for _, meaning in names} or {module}:
            self.sites.append(self.site(node, "import", meaning, module=module))

    def read_call(self, node: Node) -> None:
        module = self.require_of(node)
        if module is not None:
            self.sites.append(self.site(node, "import", module, module=module))
            return
        name = self.callee(node)
        arguments = node.child_by_field_name("arguments")
        if name is None or arguments is None or arguments.type != "arguments":
            return  # a tagged template, or a callee custodes cannot name
        args = arguments.named_children
        keywords: dict[str, object] = {}
        formatted: set[str | int] = set()
        open_keywords = False
        saw_object = False
        for index, argument in enumerate(args):
            if argument.type == "spread_element":
                open_keywords = True
            elif argument.type == "object":
                saw_object = True
                open_keywords |= self.read_object(argument, keywords, formatted)
            if self.reading.formatting and _formatted(argument):
                formatted.add(index)
        if not saw_object and any(not _is_literal(a) for a in args):
            # Options may be passed in a variable: which keys it holds is unknown here.
            open_keywords = True
        first = args[0] if args and args[0].type != "spread_element" else None
        self.sites.append(
            self.site(
                node,
                "call",
                name,
                keywords=keywords,
                open_keywords=open_keywords,
                dynamic=frozenset(
                    i
                    for i, a in enumerate(args)
                    if a.type == "spread_element" or not _is_literal(a)
                ),
                first_origins=self.origins_of(first) if first is not None else frozenset(),
                formatted=frozenset(formatted),
            )
        )

    def read_object(self, node: Node, keywords: dict[str, object], formatted: set[str | int]) -> bool:
        """Read an object literal's properties into ``keywords``; True if it has a spread."""
        spread = False
        for part in node.named_children:
            if part.type == "spread_element":
                spread = True
            elif part.type == "pair":
                key_node, value = part.child_by_field_name("key"), part.child_by_field_name("value")
                if key_node is None or value is None:
                    continue
                key = _string_value(key_node) or _text(key_node)
                keywords[key] = _literal(value)
                if self.reading.formatting and _formatted(value):
                    formatted.add(key)
            elif part.type == "shorthand_property_identifier":
                keywords[_text(part)] = DYNAMIC
        return spread

    def site(
        self,
        node: Node,
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
        return Site(
            kind=kind,
            name=name,
            line=node.start_point[0] + 1,
            end_line=node.end_point[0] + 1,
            start=node.start_byte,
            end=node.end_byte,
            module=module,
            keywords=keywords or {},
            open_keywords=open_keywords,
            dynamic=dynamic,
            first_origins=first_origins,
            formatted=formatted,
        )


def _literal(node: Node) -> object:
    node = _unwrap(node)
    kind = node.type
    if kind == "true":
        return True
    if kind == "false":
        return False
    if kind in ("null", "undefined"):
        return None
    if kind == "number":
        raw = _text(node).replace("_", "")
        try:
            return int(raw, 0) if raw.isdigit() or raw[:2].lower() in ("0x", "0o", "0b") else float(raw)
        except ValueError:
            return DYNAMIC
    if kind == "unary_expression" and _text(node).startswith("-"):
        inner = _literal(node.named_children[0]) if node.named_child_count else DYNAMIC
        return -inner if isinstance(inner, int | float) and not isinstance(inner, bool) else DYNAMIC
    value = _string_value(node)
    return value if value is not None else DYNAMIC


def _is_literal(node: Node) -> bool:
    node = _unwrap(node)
    kind = node.type
    if kind in _LITERAL_TYPES or _string_value(node) is not None:
        return True
    if kind == "array":
        return all(_is_literal(c) for c in node.named_children)
    if kind == "binary_expression":
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        return left is not None and right is not None and _is_literal(left) and _is_literal(right)
    if kind == "unary_expression":
        return all(_is_literal(c) for c in node.named_children)
    return False


def _is_text(node: Node) -> bool:
    return node.type in ("string", "template_string")


def _formatted(node: Node) -> bool:
    """Whether ``node`` builds text from values: a template with ``${…}``, ``+`` on text."""
    for current in _walk(node):
        if current.type == "template_substitution":
            return True
        if current.type == "binary_expression":
            operator = current.child_by_field_name("operator")
            left, right = current.child_by_field_name("left"), current.child_by_field_name("right")
            if (
                operator is not None
                and operator.type == "+"
                and left is not None
                and right is not None
                and (_is_text(left) or _is_text(right))
                and not (_is_literal(left) and _is_literal(right))
            ):
                return True
    return False


def _walk(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if current.type not in ("arrow_function", "function_expression", "function"):
            stack.extend(current.named_children)
