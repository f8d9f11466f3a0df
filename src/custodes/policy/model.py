"""A loaded policy: frozen rules with their patterns compiled, ready for the detectors.

The loader builds these from the validated YAML (:mod:`custodes.policy.schema`); nothing here
parses or validates. A policy is identified by its ``sha256``, which every decision records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from pathspec import GitIgnoreSpec

from custodes.findings import Severity
from custodes.policy.condition import Condition
from custodes.subject import Subject, SubjectKind

if TYPE_CHECKING:
    from custodes.detectors.phrases import PhraseMatcher

__all__ = [
    "CODE_LANGUAGES",
    "ArtifactCheck",
    "Check",
    "CodeCheck",
    "InjectionCheck",
    "NamePatterns",
    "PhraseCheck",
    "PiiCheck",
    "Policy",
    "ProvenanceCheck",
    "RegexCheck",
    "Rule",
    "Scope",
    "SecretsCheck",
    "stage_of",
]


def stage_of(kind: SubjectKind) -> str:
    """The stage a subject belongs to: ``prompt``, ``completion``, or ``code`` for the rest."""
    if kind is SubjectKind.PROMPT:
        return "prompt"
    if kind is SubjectKind.COMPLETION:
        return "completion"
    return "code"


@dataclass(frozen=True)
class Scope:
    """Which subjects a rule applies to: paths, languages, kinds, and a CEL condition."""

    include: GitIgnoreSpec | None = field(default=None, compare=False)
    exclude: GitIgnoreSpec | None = field(default=None, compare=False)
    languages: frozenset[str] | None = None
    kinds: frozenset[SubjectKind] | None = None
    when: Condition | None = None
    stages: frozenset[str] = frozenset({"code"})  # applies-to

    def admits(self, subject: Subject) -> bool:
        """Whether a subject of the code gate is this rule's (the guard judges its own stages)."""
        if stage_of(subject.kind) not in self.stages:
            return False
        if self.kinds is not None and subject.kind not in self.kinds:
            return False
        if self.languages is not None and subject.language not in self.languages:
            return False
        return self.admits_path(subject.path) and (
            self.when is None
            or self.when.holds(
                {
                    "path": subject.path,
                    "language": subject.language or "",
                    "kind": subject.kind.value,
                }
            )
        )

    def admits_path(self, path: str) -> bool:
        if self.include is not None and not self.include.match_file(path):
            return False
        return self.exclude is None or not self.exclude.match_file(path)


def _translate(pattern: str) -> str:
    out = []
    for part in re.split(r"(\*\*|\*|\?)", pattern):
        if part == "**":
            out.append(".*")
        elif part == "*":
            out.append("[^()]*")
        elif part == "?":
            out.append("[^()]")
        else:
            out.append(re.escape(part))
    return "".join(out)


class NamePatterns:
    """Glob patterns over resolved names (``requests.*``, ``**.chat.completions.create``).

    ``*`` crosses dots but not a call: ``requests.*`` names ``requests.get`` and
    ``requests.api.get``, not ``requests.get().json`` (a method of the response). ``**``
    crosses calls too: ``openai.**.create`` names ``openai.OpenAI().chat.completions.create``.
    """

    __slots__ = ("_regex", "patterns")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = patterns
        self._regex = (
            re.compile("|".join(f"(?:{_translate(p)})\\Z" for p in patterns))
            if patterns
            else None
        )

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NamePatterns) and other.patterns == self.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)

    def __repr__(self) -> str:
        return f"NamePatterns({self.patterns!r})"

    def match(self, name: str) -> bool:
        return self._regex is not None and self._regex.match(name) is not None

    def any(self, names: frozenset[str]) -> bool:
        return self._regex is not None and any(self._regex.match(n) for n in names)


@dataclass(frozen=True)
class RegexCheck:
    patterns: tuple[re.Pattern[str], ...]
    excluded: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True)
class PhraseCheck:
    """Literal phrases (``phrases``), found together by ``matcher`` (built once by the loader)."""

    phrases: tuple[str, ...]
    ignorecase: bool
    words: bool
    matcher: PhraseMatcher = field(compare=False, repr=False)


@dataclass(frozen=True)
class CodeCheck:
    """A rule over imports and calls; ``language`` is ``python`` or ``javascript``."""

    language: str
    calls: NamePatterns = field(default_factory=lambda: NamePatterns(()))
    imports: NamePatterns = field(default_factory=lambda: NamePatterns(()))
    keywords: tuple[tuple[str, object], ...] = ()
    arguments: str | None = None  # "dynamic": the first argument is not a literal; "any-dynamic": one is
    arguments_from: NamePatterns = field(default_factory=lambda: NamePatterns(()))
    without_keywords: tuple[str, ...] = ()
    formatted_arguments: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class ArtifactCheck:
    sources_content: bool = False
    proprietary: GitIgnoreSpec | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SecretsCheck:
    rules: NamePatterns = field(default_factory=lambda: NamePatterns(()))  # empty: every secret rule


@dataclass(frozen=True)
class ProvenanceCheck:
    collections: tuple[str, ...] = ("deny",)
    min_similarity: float | None = None


@dataclass(frozen=True)
class PiiCheck:
    kinds: NamePatterns = field(default_factory=lambda: NamePatterns(()))  # empty: every kind


@dataclass(frozen=True)
class InjectionCheck:
    min_confidence: float = 0.5


Check = (
    RegexCheck | PhraseCheck | CodeCheck | ArtifactCheck | SecretsCheck | ProvenanceCheck
    | PiiCheck | InjectionCheck
)  # fmt: skip


@dataclass(frozen=True)
class Rule:
    id: str
    message: str
    severity: Severity | None  # None: keep the severity the detector gives (secrets, provenance)
    controls: tuple[str, ...]
    scope: Scope
    check: Check
    origin: str = ""  # "file:line" where the rule is written, for messages
    action: str | None = None  # guard rules: block, redact, review, allow (None: by severity)
    bypass_with_token: bool = False  # guard rules: passed with a valid token naming the rule

    @property
    def stages(self) -> frozenset[str]:
        return self.scope.stages


CODE_LANGUAGES: Final[Mapping[str, frozenset[str]]] = {
    "python": frozenset({"python"}),
    "javascript": frozenset({"javascript", "typescript", "tsx"}),
}
"""The subject languages each code detector reads."""


@dataclass(frozen=True)
class Policy:
    """The rules of every pack loaded, in order, and the identity they have together."""

    name: str
    sha256: str
    rules: tuple[Rule, ...]
    sources: tuple[str, ...] = ()  # the packs and files loaded, as given

    @property
    def ref(self) -> dict[str, str]:
        """What a decision records of its policy."""
        return {"name": self.name, "sha256": self.sha256}
