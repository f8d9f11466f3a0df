"""The pydantic-free reading of provenance-only policies, pinned against the schema."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from custodes.findings import Severity
from custodes.policy import PolicyError, load_policy, schema
from custodes.policy import loader as loader_module
from custodes.policy.light import _RULE_ID, read_light

PROVENANCE_ONLY = """\
schema: 1
name: provenance-only
description: Only the provenance check.
rules:
  - id: bench.provenance
    message: code copied from an indexed collection
    provenance:
      collections: [deny, warn]
  - id: acme.vendored
    message: vendored code
    severity: low
    provenance: {collections: "acme-*", min-similarity: 0.5}
"""

# Values near every edge the schema checks: right and wrong types, empty, padded, out of range.
_ANY_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " ", "deny", "warn", " deny", "deny ", "acme-*", "high", "HIGH", "0.5"]),
)
_ID = st.one_of(
    st.sampled_from(["a.b", "bench.provenance", "A.b", "-x", "x" * 128, "x" * 129, "a b", "a\n"]),
    st.from_regex(r"[a-z0-9][a-z0-9._-]{0,8}", fullmatch=True),
    _ANY_SCALAR,
)
_SEVERITY = st.one_of(st.sampled_from([s.value for s in Severity]), _ANY_SCALAR)
_COLLECTIONS = st.one_of(
    st.lists(
        st.one_of(st.sampled_from(["deny", "warn", "acme-*", "", " x"]), _ANY_SCALAR), max_size=3
    ),
    _ANY_SCALAR,
)
_SIMILARITY = st.one_of(st.floats(-0.5, 1.5), st.integers(-1, 2), _ANY_SCALAR)


@st.composite
def _optional_dict(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    return {key: draw(value) for key, value in fields.items() if draw(st.integers(0, 3))}


_PROVENANCE = st.one_of(
    _optional_dict({"collections": _COLLECTIONS, "min-similarity": _SIMILARITY}),
    _optional_dict({"collections": _COLLECTIONS, "min_similarity": _SIMILARITY}),
    _ANY_SCALAR,
)
_RULE = st.one_of(
    _optional_dict(
        {"id": _ID, "message": _ANY_SCALAR, "severity": _SEVERITY, "provenance": _PROVENANCE}
    ),
    # Often complete, so that most of them are valid and the light path is exercised.
    st.fixed_dictionaries(
        {"id": _ID, "message": st.sampled_from(["copied", ""]), "provenance": _PROVENANCE},
        optional={
            "severity": _SEVERITY,
            "regex": st.just({"pattern": "x"}),
            "paths": st.just(["src/"]),
        },
    ),
    _ANY_SCALAR,
)
# Mostly valid rules, each value now and then just off the edge: the light path gets exercised.
_NEAR_COLLECTION = st.one_of(
    st.from_regex(r"[a-z*?-]{1,6}", fullmatch=True),
    st.from_regex(r"[a-z*?-]{1,6}", fullmatch=True),
    st.sampled_from(["deny", "warn", " deny", "deny ", "", "a\tb", "\tx"]),
)
_NEAR_RULE = st.fixed_dictionaries(
    {
        "id": st.one_of(*[st.from_regex(r"[a-z0-9][a-z0-9._-]{0,6}", fullmatch=True)] * 4, _ID),
        "message": st.sampled_from(["copied"] * 5 + [""]),
        "provenance": st.fixed_dictionaries(
            {},
            optional={
                "collections": st.one_of(st.lists(_NEAR_COLLECTION, max_size=2), _NEAR_COLLECTION),
                "min-similarity": st.one_of(
                    st.floats(-0.1, 1.1),
                    st.integers(-1, 2),
                    st.sampled_from([0.0, 1.0, True, "0.5"]),
                ),
            },
        ),
    },
    optional={"severity": _SEVERITY},
)
_POLICY = st.one_of(
    st.fixed_dictionaries(
        {"rules": st.lists(_NEAR_RULE, min_size=1, max_size=3)},
        optional={
            "schema": st.sampled_from([1, 1, 1.0, True, 2, "1"]),
            "name": st.sampled_from(["acme", "", None, 3]),
            "description": st.sampled_from(["d", None, 1, ["d"]]),
        },
    ),
    _optional_dict(
        {
            "schema": st.one_of(st.just(1), _ANY_SCALAR),
            "name": _ANY_SCALAR,
            "description": _ANY_SCALAR,
            "rules": st.one_of(st.lists(_RULE, max_size=3), _ANY_SCALAR),
            "extra": _ANY_SCALAR,
        }
    ),
    st.fixed_dictionaries({"rules": st.lists(_RULE, min_size=1, max_size=3)}),
)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(_POLICY)
def test_light_reading_accepts_only_what_the_schema_accepts_and_reads_the_same(
    data: dict[str, Any],
) -> None:
    _same_as_schema(data)


def _same_as_schema(data: dict[str, Any]) -> None:
    light = read_light(data)
    if light is None:
        return
    try:
        model = schema.PolicyModel.model_validate(data)
    except ValidationError as exc:  # pragma: no cover - the failure the test exists to find
        pytest.fail(f"the light reading accepted what the schema rejects: {exc}")
    assert light.name == model.name
    assert len(light.rules) == len(model.rules)
    for mine, theirs in zip(light.rules, model.rules, strict=True):
        assert theirs.provenance is not None
        assert (mine.id, mine.message, mine.severity) == (
            theirs.id,
            theirs.message,
            theirs.severity,
        )
        assert mine.provenance.collections == theirs.provenance.collections
        assert type(mine.provenance.min_similarity) is type(theirs.provenance.min_similarity)
        assert mine.provenance.min_similarity == theirs.provenance.min_similarity
        assert mine.detector == theirs.detector
        assert list(mine.controls) == theirs.controls
        assert list(mine.applies_to) == theirs.applies_to
        for key in ("action", "paths", "languages", "kinds", "when", "bypass_with_token"):
            assert getattr(mine, key) == getattr(theirs, key)
        for key in schema.DETECTOR_KEYS:
            if key != "provenance":
                assert getattr(mine, key) is None
                assert getattr(theirs, key) is None


_VALID: dict[str, Any] = {
    "schema": 1,
    "name": "acme",
    "description": "d",
    "rules": [
        {
            "id": "a.b",
            "message": "copied",
            "severity": "high",
            "provenance": {"collections": ["deny"], "min-similarity": 0.5},
        }
    ],
}
_PLACES = [
    ("schema",), ("name",), ("description",), ("extra",),
    ("rules", 0, "id"), ("rules", 0, "message"), ("rules", 0, "severity"), ("rules", 0, "extra"),
    ("rules", 0, "provenance"), ("rules", 0, "provenance", "collections"),
    ("rules", 0, "provenance", "collections", 0), ("rules", 0, "provenance", "min-similarity"),
    ("rules", 0, "provenance", "extra"),
]  # fmt: skip


@settings(max_examples=600)
@given(st.sampled_from(_PLACES), st.one_of(_ANY_SCALAR, st.lists(_ANY_SCALAR, max_size=2)))
def test_one_value_off_a_valid_policy(place: tuple[str | int, ...], value: Any) -> None:
    """A valid policy with one value replaced: the same property, right at the edges."""

    data = copy.deepcopy(_VALID)
    target: Any = data
    for step in place[:-1]:
        target = target[step]
    target[place[-1]] = value
    _same_as_schema(data)


def test_plain_provenance_policies_take_the_light_path() -> None:
    # Written out by hand: what the schema makes of PROVENANCE_ONLY.
    import yaml

    light = read_light(yaml.safe_load(PROVENANCE_ONLY))
    assert light is not None
    assert light.name == "provenance-only"
    assert [
        (r.id, r.severity, r.provenance.collections, r.provenance.min_similarity)
        for r in light.rules
    ] == [
        ("bench.provenance", None, ["deny", "warn"], None),
        ("acme.vendored", Severity.LOW, ["acme-*"], 0.5),
    ]
    for other in (
        {"rules": [{"id": "a", "message": "m", "provenance": {}, "paths": ["src/"]}]},
        {"rules": [{"id": "a", "message": "m", "severity": "high", "regex": {"pattern": "x"}}]},
        {"rules": [{"id": "a", "message": "m", "provenance": {"min-similarity": math.nan}}]},
        {"rules": [{"id": "a", "message": "m", "provenance": {"min-similarity": True}}]},
        {"schema": True, "rules": [{"id": "a", "message": "m", "provenance": {}}]},
    ):
        assert read_light(other) is None


def test_the_light_rule_id_pattern_is_the_schemas() -> None:
    assert _RULE_ID.pattern == schema._RULE_ID.pattern


def test_a_policy_loads_the_same_with_or_without_the_light_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy_file = tmp_path / "provenance.yaml"
    policy_file.write_text(PROVENANCE_ONLY)
    light = load_policy([policy_file])
    monkeypatch.setattr(loader_module, "read_light", lambda data: None)
    full = load_policy([policy_file])
    assert light == full
    assert light.sha256 == full.sha256
    assert [rule.origin for rule in light.rules] == [rule.origin for rule in full.rules]


def test_errors_in_a_provenance_policy_still_come_from_the_schema(tmp_path: Path) -> None:
    policy_file = tmp_path / "bad.yaml"
    policy_file.write_text(
        "rules:\n  - id: a.b\n    message: m\n    provenance: {collections: [deny], min-similarity: 2}\n"
    )
    with pytest.raises(PolicyError) as caught:
        load_policy([policy_file])
    assert "rules[0].provenance.min-similarity" in str(caught.value)
    assert "less than or equal to 1" in str(caught.value)


def test_loading_a_provenance_policy_does_not_import_pydantic(tmp_path: Path) -> None:
    policy_file = tmp_path / "provenance.yaml"
    policy_file.write_text(PROVENANCE_ONLY)
    probe = (
        "import sys\n"
        "from custodes.policy import load_policy\n"
        "from custodes.detectors.rules import policy_detectors\n"
        f"policy_detectors(load_policy([{str(policy_file)!r}]))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
