"""The policy file format, as pydantic models: what a YAML policy pack may say.

A pack is a mapping with ``rules``; each rule names exactly one detector by its key::

    schema: 1
    name: acme
    rules:
      - id: acme.no-requests-in-src
        message: network call in production code
        severity: medium
        controls: ["nist-ai-rmf:MEASURE-2.7"]
        paths: {include: ["src/"], exclude: ["tests/"]}
        python:
          calls: ["requests.*"]

A rule applies to code (the default) or, for the guard door, to prompts and completions::

      - id: acme.customer-schema
        message: the customer PII schema needs a policy token
        applies-to: [prompt]            # code | prompt | completion (one or more)
        severity: high
        action: block                   # block | redact | review | allow (recorded only)
        bypass-with-token: true         # passed with a valid token naming this rule
        when: 'caller.role != "dba"'    # caller.id/role/purpose/tenant, model, stage
        regex: {pattern: 'pii\\.customers'}

Guard rules read ``regex``, ``phrases`` (literal words or phrases, a ban list)::

      - id: acme.ban-list
        message: a banned topic
        applies-to: [prompt, completion]
        severity: high
        phrases: {list: ["a keylogger", "competitor pricing sheet"], ignorecase: true, words: true}

and ``secrets``, ``provenance``, ``pii`` (``kinds``: which identifiers)
and ``injection`` (``min-confidence``). Without ``action``, personal data is redacted, a
credential blocked at high or critical severity and redacted below, and anything else blocked
at high or critical and recorded only below.

Keys are written with hyphens (``pattern-not``); unknown keys are errors, so a typo never
silently disables a check. These models stop at the edge: the loader turns them into the
frozen rules of :mod:`custodes.policy.model`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pathspec import GitIgnoreSpec
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from custodes.findings import Severity
from custodes.policy.condition import CODE_VARIABLES, GUARD_VARIABLES, compile_condition
from custodes.policy.controls import FRAMEWORKS, is_control, suggest_control
from custodes.sources.languages import LANGUAGES
from custodes.subject import SubjectKind

__all__ = [
    "DETECTOR_KEYS",
    "GUARD_ACTIONS",
    "STAGES",
    "ArtifactModel",
    "CodeModel",
    "InjectionModel",
    "PathsModel",
    "PhrasesModel",
    "PiiModel",
    "PolicyModel",
    "ProvenanceModel",
    "RegexModel",
    "RuleModel",
    "SecretsModel",
]

DETECTOR_KEYS = (
    "regex",
    "phrases",
    "python",
    "javascript",
    "artifact",
    "secrets",
    "provenance",
    "pii",
    "injection",
)
"""The keys that name a rule's detector; a rule has exactly one of them."""

STAGES = ("code", "prompt", "completion")
"""What a rule applies to (``applies-to``): the code gate's subjects, or the guard door's
prompts (admission, before the model) and completions (validation, after it)."""

GUARD_ACTIONS = ("block", "redact", "review", "allow")
"""What the guard does when a prompt or completion rule matches (``action``)."""

# Detectors that read only code (files, hunks, archive members), and ones that read only what
# the guard door sees; the rest read any text.
_CODE_ONLY = ("python", "javascript", "artifact")
_GUARD_ONLY = ("pii", "injection")
# Detectors whose findings carry the detector's own severity, so a rule need not give one.
_OWN_SEVERITY = ("secrets", "provenance", "pii", "injection")

REGEX_FLAGS = {
    "ignorecase": re.IGNORECASE,
    "dotall": re.DOTALL,
    "verbose": re.VERBOSE,
}

_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


def _hyphenated(name: str) -> str:
    return name.rstrip("_").replace("_", "-")


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=_hyphenated, populate_by_name=False
    )


def _as_list(value: Any) -> Any:
    """A single string where a list is expected means a list of one."""
    return [value] if isinstance(value, str) else value


def _regex(pattern: str) -> str:
    try:
        compiled = re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    if compiled.fullmatch("") is not None:
        raise ValueError(f"the regular expression {pattern!r} matches the empty string")
    return pattern


def _glob(pattern: str) -> str:
    if not pattern.strip():
        raise ValueError("an empty path pattern")
    try:
        GitIgnoreSpec.from_lines([pattern])
    except ValueError as exc:
        raise ValueError(f"invalid path pattern {pattern!r}: {exc}") from None
    return pattern


def _control(control_id: str) -> str:
    if is_control(control_id):
        return control_id
    suggestion = suggest_control(control_id)
    hint = f"did you mean {suggestion!r}? " if suggestion else ""
    raise ValueError(
        f"unknown control {control_id!r}; {hint}controls are framework:id with a framework of "
        f"{', '.join(FRAMEWORKS)} (the list is custodes.policy.CONTROLS)"
    )


def _language(name: str) -> str:
    if name not in LANGUAGES:
        import difflib

        close = difflib.get_close_matches(name, sorted(LANGUAGES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown language {name!r}{hint}")
    return name


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError("a keyword's value must be true, false, a number, a string or null")


def _argument(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("an argument is a keyword name or a position (0 for the first)")
    if isinstance(value, int) and value < 0:
        raise ValueError("an argument position counts from 0")
    return value


def _name_glob(pattern: str) -> str:
    if not pattern or pattern != pattern.strip():
        raise ValueError(f"invalid name pattern {pattern!r}")
    return pattern


Regex = Annotated[str, AfterValidator(_regex)]
Glob = Annotated[str, AfterValidator(_glob)]
NameGlob = Annotated[str, AfterValidator(_name_glob)]
ControlId = Annotated[str, AfterValidator(_control)]
Language = Annotated[str, AfterValidator(_language)]
Scalar = Annotated[Any, AfterValidator(_scalar)]
Argument = Annotated[Any, AfterValidator(_argument)]
Strings = BeforeValidator(_as_list)


class PathsModel(_Model):
    """Which paths a rule reads, as .gitignore patterns: included unless excluded.

    No ``include`` means every path. A plain list is read as ``include``.
    """

    include: Annotated[list[Glob], Strings] = []
    exclude: Annotated[list[Glob], Strings] = []

    @model_validator(mode="before")
    @classmethod
    def _plain_list(cls, value: Any) -> Any:
        return {"include": value} if isinstance(value, list | str) else value


class RegexModel(_Model):
    """A regular expression over the text; ``^`` and ``$`` match at every line."""

    pattern: Regex | None = None
    pattern_either: list[Regex] | None = None
    pattern_not: Annotated[list[Regex], Strings] = []
    flags: list[Literal["ignorecase", "dotall", "verbose"]] = []

    @model_validator(mode="after")
    def _one_pattern(self) -> RegexModel:
        if (self.pattern is None) == (self.pattern_either is None):
            raise ValueError("give exactly one of 'pattern' and 'pattern-either'")
        if self.pattern_either is not None and not self.pattern_either:
            raise ValueError("'pattern-either' needs at least one pattern")
        return self


class PhrasesModel(_Model):
    """Literal words or phrases (no regular-expression syntax), all found in one pass.

    ``ignorecase`` (default true) compares under Unicode full case folding; ``words`` (default
    true) keeps only matches that do not extend a word (see :mod:`custodes.detectors.phrases`).
    """

    list_: Annotated[list[str], Strings]
    ignorecase: bool = True
    words: bool = True

    @model_validator(mode="after")
    def _distinct(self) -> PhrasesModel:
        if not self.list_:
            raise ValueError("'list' needs at least one phrase")
        first: dict[str, int] = {}
        for number, phrase in enumerate(self.list_):
            if not phrase.strip():
                raise ValueError(f"phrase {number} is empty (or only spaces)")
            key = phrase.casefold() if self.ignorecase else phrase
            if key in first:
                same = " (ignoring case)" if self.ignorecase else ""
                raise ValueError(
                    f"phrase {number} ({phrase!r}) repeats phrase {first[key]}{same}"
                )
            first[key] = number
        return self


class CodeModel(_Model):
    """Imports and calls in Python or JavaScript/TypeScript, resolved through import aliases.

    An import rule (``imports``: module globs) selects import statements and takes no other
    key. A call rule selects calls by name and narrows them; every key given must hold:

    * ``calls``: callee globs (``requests.*``; ``*`` stops at a call, ``**`` does not);
    * ``keywords``: ``{name: literal}`` passed with exactly that value (in JavaScript, the
      properties of an object literal argument), e.g. ``{verify: false}``;
    * ``arguments``: ``dynamic`` when the first argument is not a literal, ``any-dynamic``
      when one of them is not;
    * ``arguments-from``: the first argument holds what a call of these names returned;
    * ``without-keywords``: none of these keywords is passed (nor ``**kwargs``);
    * ``formatted-arguments``: one of these arguments (names, or positions from 0) is built
      by string formatting (f-string, template literal, ``+``, ``%``, ``.format``).
    """

    calls: Annotated[list[NameGlob], Strings] = []
    imports: Annotated[list[NameGlob], Strings] = []
    keywords: dict[str, Scalar] = {}
    arguments: Literal["dynamic", "any-dynamic"] | None = None
    arguments_from: Annotated[list[NameGlob], Strings] = []
    without_keywords: Annotated[list[str], Strings] = []
    formatted_arguments: list[Argument] = []

    @model_validator(mode="after")
    def _selects_something(self) -> CodeModel:
        narrowing = bool(
            self.keywords
            or self.arguments
            or self.arguments_from
            or self.without_keywords
            or self.formatted_arguments
        )
        if self.imports and (self.calls or narrowing):
            raise ValueError("'imports' selects import statements and takes no call keys")
        if not (self.imports or self.calls or self.keywords):
            raise ValueError("give 'calls', 'keywords' or 'imports'")
        return self


class ArtifactModel(_Model):
    """What a release artifact (npm tarball, wheel, zip, jar) must not carry."""

    sources_content: bool = False
    proprietary: Annotated[list[Glob], Strings] = []

    @model_validator(mode="after")
    def _checks_something(self) -> ArtifactModel:
        if not (self.sources_content or self.proprietary):
            raise ValueError("give 'sources-content: true' or 'proprietary' paths")
        return self


class SecretsModel(_Model):
    """Run the credentials detector; ``rules`` keeps only the secret rules it names (globs)."""

    rules: Annotated[list[NameGlob], Strings] = []

    @field_validator("rules")
    @classmethod
    def _known(cls, patterns: list[str]) -> list[str]:
        from custodes.detectors.secret_rules import RULES
        from custodes.policy.model import NamePatterns

        for pattern in patterns:
            if not any(NamePatterns((pattern,)).match(rule.id) for rule in RULES):
                raise ValueError(
                    f"{pattern!r} names no secret rule; secret rule ids look like "
                    "'secret.openai-api-key'"
                )
        return patterns


class ProvenanceModel(_Model):
    """Run the provenance detector; keep matches of the collections named, by mode (``deny``,
    ``warn``) or by name (globs), at ``min-similarity`` or above."""

    collections: Annotated[list[NameGlob], Strings] = ["deny"]
    min_similarity: float | None = Field(default=None, ge=0.0, le=1.0)


class PiiModel(_Model):
    """Run the personal-data detector; ``kinds`` keeps only the identifiers named (globs over
    rule ids such as ``pii.email``, ``pii.card``; empty: every kind)."""

    kinds: Annotated[list[NameGlob], Strings] = []

    @field_validator("kinds")
    @classmethod
    def _known(cls, patterns: list[str]) -> list[str]:
        from custodes.detectors.pii import RULES
        from custodes.policy.model import NamePatterns

        for pattern in patterns:
            if not any(NamePatterns((pattern,)).match(rule) for rule in RULES):
                raise ValueError(
                    f"{pattern!r} names no personal-data rule; they are "
                    f"{', '.join(sorted(RULES))}"
                )
        return patterns


class InjectionModel(_Model):
    """Run the prompt-injection detector; report a family of techniques at ``min-confidence``
    or above (0.5 by default; 0.75 keeps only high-severity ones)."""

    min_confidence: float = Field(default=0.5, gt=0.0, le=1.0)


class RuleModel(_Model):
    id: str
    message: str = Field(min_length=1)
    severity: Severity | None = None
    controls: list[ControlId] = []
    # Before ``when``: its validator reads what the rule applies to.
    applies_to: Annotated[
        list[Literal["code", "prompt", "completion"]], Strings, Field(min_length=1)
    ] = ["code"]
    action: Literal["block", "redact", "review", "allow"] | None = None
    bypass_with_token: bool = False
    paths: PathsModel | None = None
    languages: Annotated[list[Language], Strings] | None = None
    kinds: Annotated[list[SubjectKind], Strings] | None = None
    when: str | None = None
    regex: RegexModel | None = None
    phrases: PhrasesModel | None = None
    python: CodeModel | None = None
    javascript: CodeModel | None = None
    artifact: ArtifactModel | None = None
    secrets: SecretsModel | None = None
    provenance: ProvenanceModel | None = None
    pii: PiiModel | None = None
    injection: InjectionModel | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _RULE_ID.match(value):
            raise ValueError(
                f"invalid rule id {value!r}; use lower-case letters, digits, '.', '-' and '_'"
            )
        return value

    @field_validator("when")
    @classmethod
    def _when(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            stages = set(info.data.get("applies_to") or ["code"])
            if "code" in stages and len(stages) > 1:
                raise ValueError(
                    "a condition reads either the code gate's variables or the guard's; "
                    "split the rule into one for code and one for prompt/completion"
                )
            # A ConditionError is a ValueError: pydantic reports it.
            compile_condition(value, CODE_VARIABLES if "code" in stages else GUARD_VARIABLES)
        return value

    @model_validator(mode="after")
    def _one_detector(self) -> RuleModel:
        given = [key for key in DETECTOR_KEYS if getattr(self, key) is not None]
        if len(given) != 1:
            what = "no detector" if not given else f"{len(given)} detectors ({', '.join(given)})"
            raise ValueError(
                f"a rule has exactly one detector, this one has {what}; "
                f"use one of {', '.join(DETECTOR_KEYS)}"
            )
        if self.severity is None and given[0] not in _OWN_SEVERITY:
            raise ValueError(
                "missing required key 'severity' (one of info, low, medium, high, critical)"
            )
        self._check_stages(given[0])
        return self

    def _check_stages(self, detector: str) -> None:
        stages = set(self.applies_to)
        guard = stages - {"code"}
        if detector in _CODE_ONLY and guard:
            raise ValueError(
                f"a {detector} rule reads code; it cannot apply to {', '.join(sorted(guard))} "
                "(use regex, phrases, secrets, provenance, pii or injection there)"
            )
        if detector in _GUARD_ONLY and "code" in stages:
            raise ValueError(
                f"a {detector} rule reads prompts and completions; "
                "give applies-to: [prompt] or [completion] (or both)"
            )
        if not guard:
            if self.action is not None or self.bypass_with_token:
                raise ValueError(
                    "'action' and 'bypass-with-token' are for guard rules; "
                    "add applies-to: [prompt] or [completion]"
                )
            return
        if "code" not in stages and (
            self.paths is not None or self.languages is not None or self.kinds is not None
        ):
            raise ValueError(
                "'paths', 'languages' and 'kinds' select code; a prompt or completion rule "
                "is narrowed with 'when' (caller.id, caller.role, caller.purpose, model, stage)"
            )

    @property
    def detector(self) -> str:
        return next(key for key in DETECTOR_KEYS if getattr(self, key) is not None)


class PolicyModel(_Model):
    schema_: Literal[1] = 1
    name: str | None = Field(default=None, min_length=1)
    description: str | None = None
    rules: list[RuleModel]

    @field_validator("rules", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("a policy needs at least one rule")
        return value
