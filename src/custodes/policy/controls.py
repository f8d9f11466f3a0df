"""The control ids a rule may name, as ``framework:id``: the one list a policy is checked against.

A wrong article number in an audit report is worse than none, so a policy that names a control
not listed here does not load. Each framework's ids are written as the framework writes them;
a rule maps to every framework where it honestly applies, so its evidence counts in each.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["CONTROLS", "FRAMEWORKS", "is_control", "suggest_control"]

# framework -> id -> title. Read-only: the list is data, changed only by a new release.
_BY_FRAMEWORK: Final[dict[str, dict[str, str]]] = {
    "owasp-llm": {
        "LLM01": "Prompt Injection",
        "LLM02": "Sensitive Information Disclosure",
        "LLM03": "Supply Chain",
        "LLM04": "Data and Model Poisoning",
        "LLM05": "Improper Output Handling",
        "LLM06": "Excessive Agency",
        "LLM07": "System Prompt Leakage",
        "LLM08": "Vector and Embedding Weaknesses",
        "LLM09": "Misinformation",
        "LLM10": "Unbounded Consumption",
    },
    "eu-ai-act": {
        "art4": "AI literacy",
        "art9": "Risk management system",
        "art10": "Data and data governance",
        "art11": "Technical documentation (Annex IV)",
        "art12": "Record-keeping",
        "art13": "Transparency and provision of information to deployers",
        "art14": "Human oversight",
        "art15": "Accuracy, robustness and cybersecurity",
        "art17": "Quality management system",
        "art19": "Automatically generated logs",
        "art26": "Obligations of deployers of high-risk AI systems",
        "art27": "Fundamental rights impact assessment",
        "art50": "Transparency obligations towards natural persons",
        "art86": "Right to explanation of individual decision-making",
    },
    "nist-ai-rmf": {
        "GOVERN-1.5": "Ongoing monitoring and periodic review",
        "GOVERN-1.6": "AI system inventory",
        "GOVERN-4.3": "Incident identification and information sharing",
        "MAP-3.5": "Human oversight processes",
        "MEASURE-2.4": "Production monitoring",
        "MEASURE-2.6": "Safety: real-time monitoring and response",
        "MEASURE-2.7": "Security and resilience",
        "MEASURE-2.8": "Transparency and accountability",
        "MEASURE-3.1": "Emergent risks tracked",
        "MEASURE-3.3": "Feedback and appeal",
        "MANAGE-2.4": "Supersede, disengage or deactivate",
        "MANAGE-3.1": "Third-party risks monitored",
        "MANAGE-4.1": "Post-deployment monitoring, override, incident response, change management",
        "MANAGE-4.3": "Incidents tracked and communicated",
    },
    "iso-42001": {
        "A.6.2.6": "AI system operation and monitoring",
        "A.6.2.8": "AI system recording of event logs",
        "A.8.3": "External reporting",
        "A.8.4": "Communication of incidents",
        "A.9": "Use of AI systems",
        "A.10": "Third-party and customer relationships",
    },
}

CONTROLS: Final[Mapping[str, str]] = MappingProxyType(
    {
        f"{framework}:{control}": title
        for framework, controls in _BY_FRAMEWORK.items()
        for control, title in controls.items()
    }
)
"""Every valid control id, ``framework:id``, with its title."""

FRAMEWORKS: Final[tuple[str, ...]] = tuple(_BY_FRAMEWORK)


def is_control(control_id: str) -> bool:
    return control_id in CONTROLS


def suggest_control(control_id: str) -> str | None:
    """The valid id closest to a mistyped one (case, separators, a missing prefix), if any."""
    import difflib

    if control_id.lower() in _FOLDED:
        return _FOLDED[control_id.lower()]
    close = difflib.get_close_matches(control_id, list(CONTROLS), n=1, cutoff=0.75)
    return close[0] if close else None


_FOLDED: Final[Mapping[str, str]] = MappingProxyType({c.lower(): c for c in CONTROLS})
