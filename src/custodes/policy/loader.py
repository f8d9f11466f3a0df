"""Load policy packs (built-in names or YAML files) into one :class:`~custodes.policy.model.Policy`.

Every problem is reported at once, each as ``FILE:LINE: where: what is wrong`` with what is
allowed: a YAML syntax error, an unknown key (with the nearest allowed one), a wrong value, an
invalid regular expression, an unknown control, a duplicate rule id. Lines come from PyYAML's
node marks, so a pydantic error location (``rules[2].severity``) points into the file.

A policy's ``sha256`` is the SHA-256 of the RFC 8785 canonical JSON of the list of every pack
loaded, in order, as written (comments, layout and YAML anchors do not count; a changed rule
does).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, get_args

import rfc8785
import yaml
from pathspec import GitIgnoreSpec
from pydantic import BaseModel, ValidationError

from custodes.errors import InvalidPolicy
from custodes.policy.condition import (
    CODE_VARIABLES,
    GUARD_VARIABLES,
    Condition,
    compile_condition,
)
from custodes.policy.model import (
    CODE_LANGUAGES,
    ArtifactCheck,
    Check,
    CodeCheck,
    InjectionCheck,
    NamePatterns,
    PhraseCheck,
    PiiCheck,
    Policy,
    ProvenanceCheck,
    RegexCheck,
    Rule,
    Scope,
    SecretsCheck,
)
from custodes.policy.schema import REGEX_FLAGS, CodeModel, PolicyModel, RuleModel

__all__ = ["DEFAULT_PACKS", "PACKS", "PolicyError", "Problem", "load_policy", "pack_text"]

PACKS: Final = ("enterprise", "owasp-llm")
"""The built-in packs, by name."""

DEFAULT_PACKS: Final = ("enterprise",)
"""What applies when no policy is given."""

_HINT: Final = "fix the policy file; the format is described under `custodes scan --help`"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy, where it is."""

    source: str
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        at = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{at}: {self.where}: {self.message}" if self.where else f"{at}: {self.message}"


class PolicyError(InvalidPolicy):
    """A policy that cannot be loaded; ``problems`` lists every fault found, in file order."""

    def __init__(self, problems: Sequence[Problem], *, hint: str | None = _HINT) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(map(str, self.problems)), hint=hint)


def load_policy(specs: Sequence[str | os.PathLike[str]] = ()) -> Policy:
    """The policy made of ``specs``: built-in pack names or YAML files, combined in order.

    No spec means :data:`DEFAULT_PACKS`. A file of the same name as a pack wins over the pack.
    Raises :class:`PolicyError` naming every problem found.
    """
    loaded: list[tuple[str, str, str]] = []  # (source label, default name, text)
    seen: set[str] = set()
    for spec in specs or DEFAULT_PACKS:
        source, default_name, text, identity = _read(spec)
        if identity not in seen:
            seen.add(identity)
            loaded.append((source, default_name, text))
    problems: list[Problem] = []
    packs: list[tuple[str, str, PolicyModel, yaml.Node, dict[str, Any]]] = []
    for source, default_name, text in loaded:
        parsed = _parse(text, source, problems)
        if parsed is not None:
            model, node, data = parsed
            packs.append((source, model.name or default_name, model, node, data))
    if problems:
        raise PolicyError(problems)
    rules = _build(packs, problems)
    if problems:
        raise PolicyError(problems)
    try:
        canonical = rfc8785.dumps([data for _, _, _, _, data in packs])
    except rfc8785.CanonicalizationError as exc:
        raise PolicyError(
            [Problem(" + ".join(source for source, *_ in packs), None, "", f"cannot hash: {exc}")]
        ) from exc
    return Policy(
        name="+".join(name for _, name, *_ in packs),
        sha256=hashlib.sha256(canonical).hexdigest(),
        rules=tuple(rules),
        sources=tuple(source for source, _, _ in loaded),
    )


def pack_text(name: str) -> str:
    """The YAML of the built-in pack ``name``."""
    return resources.files("custodes.policy").joinpath("packs", f"{name}.yaml").read_text("utf-8")


def _read(spec: str | os.PathLike[str]) -> tuple[str, str, str, str]:
    """(source label, default name, text, identity) of a pack name or a file."""
    path = Path(spec)
    if isinstance(spec, str) and spec in PACKS and not path.is_file():
        return f"{spec}.yaml", spec, pack_text(spec), f"pack:{spec}"
    label = os.fspath(spec)
    if not path.exists():
        raise PolicyError(
            [Problem(label, None, "", "no such policy file or built-in pack")],
            hint=f"give a YAML policy file or a built-in pack: {', '.join(PACKS)}",
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(
            [Problem(label, None, "", f"cannot read the policy: {exc.strerror}")],
            hint="check the path and its permissions",
        ) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyError(
            [Problem(label, None, "", f"not UTF-8 text (byte {exc.start})")],
            hint="save the policy as UTF-8",
        ) from exc
    return label, path.stem, text, f"file:{path.resolve()}"


def _parse(
    text: str, source: str, problems: list[Problem]
) -> tuple[PolicyModel, yaml.Node, dict[str, Any]] | None:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        problems.append(Problem(source, None, "", "YAML syntax: nested too deeply"))
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        problems.append(
            Problem(source, mark.line + 1 if mark else None, "", f"YAML syntax: {what}")
        )
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(source, None, "", f"YAML syntax: {exc}"))
        return None
    if node is None:
        problems.append(Problem(source, 1, "", "the policy is empty; it needs 'rules'"))
        return None
    before = len(problems)
    problems.extend(_node_problems(node, source))
    if len(problems) > before:
        return None
    data = yaml.SafeLoader("").construct_document(node)
    if not isinstance(data, dict):
        problems.append(
            Problem(source, _line(node), "", "a policy is a mapping with 'rules' (and 'name')")
        )
        return None
    try:
        model = PolicyModel.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems(exc, node, source))
        return None
    problems.extend(_duplicate_ids(model, node, source))
    return (model, node, data) if len(problems) == before else None


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


_MAX_NODES: Final = 200_000


def _node_problems(root: yaml.Node, source: str) -> list[Problem]:
    """Duplicate keys, and a document that aliases expand beyond reason (a YAML bomb)."""
    problems: list[Problem] = []
    stack = [root]
    visited = 0
    while stack:
        node = stack.pop()
        visited += 1
        if visited > _MAX_NODES:
            return [Problem(source, 1, "", f"the policy expands to more than {_MAX_NODES:,} "
                            "YAML nodes (aliases of aliases); write it out plainly")]
        if isinstance(node, yaml.MappingNode):
            # PyYAML keeps the last of two equal keys; a policy must not hide a rule's first half.
            seen: set[object] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        problems.append(
                            Problem(source, _line(key), "", f"duplicate key {key.value!r}")
                        )
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return sorted(problems, key=lambda p: p.line or 0)


def _duplicate_ids(model: PolicyModel, root: yaml.Node, source: str) -> Iterator[Problem]:
    first: dict[str, int] = {}
    for index, rule in enumerate(model.rules):
        line = _locate(root, ("rules", index, "id"))[0]
        if rule.id in first:
            yield Problem(
                source,
                line,
                f"rules[{index}].id",
                f"duplicate rule id {rule.id!r} (first at line {first[rule.id]})",
            )
        else:
            first[rule.id] = line


def _locate(root: yaml.Node, loc: Sequence[int | str]) -> tuple[int, bool]:
    """The line of the node at ``loc`` (or of the deepest node on the way), and if reached.

    For the last step of a mapping the key's line is given: an unknown key is reported there.
    """
    node = root
    line = _line(root)
    for step in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            pair = next((p for p in node.value if getattr(p[0], "value", None) == step), None)
            if pair is None:
                return line, False
            line = _line(pair[0])
            node = pair[1]
            if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
                line = _line(node)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                return line, False
            node = node.value[step]
            line = _line(node)
        else:
            return line, False
    return line, True


def _where(loc: Sequence[int | str]) -> str:
    out = ""
    for step in loc:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The schema model that validates the mapping at ``loc``, to list its keys."""
    model: type[BaseModel] | None = PolicyModel
    for step in loc:
        if isinstance(step, int):
            continue
        if model is None:
            return None
        field = next(
            (f for name, f in model.model_fields.items() if (f.alias or name) == step), None
        )
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


_YAML_TYPES: Final = {
    str: "a string",
    bool: "true/false",
    int: "a number",
    float: "a number",
    list: "a list",
    dict: "a mapping",
    type(None): "nothing (null)",
}
_EXPECTED: Final = {
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
}


def _problems(exc: ValidationError, root: yaml.Node, source: str) -> list[Problem]:
    found: dict[tuple[int | None, str, str], None] = {}
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        kind = error["type"]
        where = loc
        if kind == "missing":
            where = loc[:-1]
            message = f"missing required key {loc[-1]!r}"
        elif kind == "extra_forbidden":
            where = loc[:-1]
            message = _unknown_key(str(loc[-1]), _model_at(where))
        elif kind in ("enum", "literal_error"):
            expected = error.get("ctx", {}).get("expected", "")
            message = f"{error['input']!r} is not allowed; use one of {expected}"
        elif kind in _EXPECTED:
            got = _YAML_TYPES.get(type(error["input"]), type(error["input"]).__name__)
            message = f"expected {_EXPECTED[kind]}, got {got}"
        elif kind in ("value_error", "assertion_error"):
            message = str(error["msg"]).removeprefix("Value error, ")
        elif kind == "string_too_short":
            message = "must not be empty"
        else:
            message = str(error["msg"])
        line, _ = _locate(root, loc)
        found[(line, _where(where), message)] = None
    problems = [Problem(source, line, where, message) for line, where, message in found]
    problems.sort(key=lambda p: p.line or 0)
    return problems


def _unknown_key(key: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return f"unknown key {key!r}"
    allowed = _keys(model)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}; allowed here: {', '.join(allowed)}"


def _build(
    packs: Sequence[tuple[str, str, PolicyModel, yaml.Node, dict[str, Any]]],
    problems: list[Problem],
) -> list[Rule]:
    rules: list[Rule] = []
    origin: dict[str, str] = {}
    for source, _, model, node, _ in packs:
        for index, spec in enumerate(model.rules):
            line, _ = _locate(node, ("rules", index))
            where = f"rules[{index}]"
            if spec.id in origin:
                problems.append(
                    Problem(
                        source,
                        _locate(node, ("rules", index, "id"))[0],
                        f"{where}.id",
                        f"rule id {spec.id!r} is also defined in {origin[spec.id]}; "
                        "rule ids are unique across the packs combined",
                    )
                )
                continue
            origin[spec.id] = f"{source}:{line}"
            try:
                rules.append(_rule(spec, f"{source}:{line}"))
            except ValueError as exc:
                problems.append(Problem(source, line, where, str(exc)))
    return rules


def _rule(spec: RuleModel, origin: str) -> Rule:
    check = _check(spec)
    languages = frozenset(spec.languages) if spec.languages is not None else None
    if isinstance(check, CodeCheck):
        readable = CODE_LANGUAGES[check.language]
        if languages is not None and not languages & readable:
            raise ValueError(
                f"a {spec.detector} rule reads {', '.join(sorted(readable))}; "
                f"its languages ({', '.join(sorted(languages))}) leave it nothing to read"
            )
        languages = readable if languages is None else languages & readable
    paths = spec.paths
    scope = Scope(
        include=GitIgnoreSpec.from_lines(paths.include) if paths and paths.include else None,
        exclude=GitIgnoreSpec.from_lines(paths.exclude) if paths and paths.exclude else None,
        languages=languages,
        kinds=frozenset(spec.kinds) if spec.kinds is not None else None,
        when=_condition(spec),
        stages=frozenset(spec.applies_to),
    )
    return Rule(
        id=spec.id,
        message=spec.message,
        severity=spec.severity,
        controls=tuple(dict.fromkeys(spec.controls)),
        scope=scope,
        check=check,
        origin=origin,
        action=spec.action,
        bypass_with_token=spec.bypass_with_token,
    )


def _condition(spec: RuleModel) -> Condition | None:
    if spec.when is None:
        return None
    variables = CODE_VARIABLES if "code" in spec.applies_to else GUARD_VARIABLES
    return compile_condition(spec.when, variables)


def _check(spec: RuleModel) -> Check:
    if spec.regex is not None:
        flags = re.MULTILINE
        for flag in spec.regex.flags:
            flags |= REGEX_FLAGS[flag]
        try:
            patterns = tuple(
                re.compile(p, flags)
                for p in ([spec.regex.pattern] if spec.regex.pattern else spec.regex.pattern_either or [])
            )
            excluded = tuple(re.compile(p, flags) for p in spec.regex.pattern_not)
        except re.error as exc:  # valid alone, but not with these flags (verbose)
            raise ValueError(f"invalid regular expression with flags {spec.regex.flags}: {exc}") from None
        return RegexCheck(patterns=patterns, excluded=excluded)
    if spec.phrases is not None:
        from custodes.detectors.phrases import PhraseMatcher

        listed = tuple(spec.phrases.list_)
        return PhraseCheck(
            phrases=listed,
            ignorecase=spec.phrases.ignorecase,
            words=spec.phrases.words,
            matcher=PhraseMatcher(
                listed, ignorecase=spec.phrases.ignorecase, words=spec.phrases.words
            ),
        )
    if spec.python is not None:
        return _code("python", spec.python)
    if spec.javascript is not None:
        return _code("javascript", spec.javascript)
    if spec.artifact is not None:
        proprietary = spec.artifact.proprietary
        return ArtifactCheck(
            sources_content=spec.artifact.sources_content,
            proprietary=GitIgnoreSpec.from_lines(proprietary) if proprietary else None,
        )
    if spec.secrets is not None:
        return SecretsCheck(rules=NamePatterns(tuple(spec.secrets.rules)))
    if spec.pii is not None:
        return PiiCheck(kinds=NamePatterns(tuple(spec.pii.kinds)))
    if spec.injection is not None:
        return InjectionCheck(min_confidence=spec.injection.min_confidence)
    assert spec.provenance is not None
    return ProvenanceCheck(
        collections=tuple(spec.provenance.collections),
        min_similarity=spec.provenance.min_similarity,
    )


def _code(language: str, spec: CodeModel) -> CodeCheck:
    return CodeCheck(
        language=language,
        calls=NamePatterns(tuple(spec.calls)),
        imports=NamePatterns(tuple(spec.imports)),
        keywords=tuple(spec.keywords.items()),
        arguments=spec.arguments,
        arguments_from=NamePatterns(tuple(spec.arguments_from)),
        without_keywords=tuple(spec.without_keywords),
        formatted_arguments=tuple(spec.formatted_arguments),
    )
