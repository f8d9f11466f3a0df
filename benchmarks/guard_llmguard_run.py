"""LLM Guard's offline scanners timed on the guard benchmark's prompts.

usage: python guard_llmguard_run.py JOB.json OUT.json

Runs in ``benchmarks/.work/llmguard-venv``, where ``llm-guard`` is installed (with a CPU build
of PyTorch, which it imports). JOB gives the prompts, the regular expressions, the banned
substrings and the number of rounds. For each job — ``secrets``, ``regex``, ``ban``, ``pii``
and ``all`` (the four through ``llm_guard.scan_prompt``, as an application calls them) — every
prompt is scanned once per round; OUT gets each prompt's time per round (seconds) and whether
the scanner flagged it (``is_valid`` false).

Only scanners that need no model download run: ``Secrets`` (detect-secrets and LLM Guard's
plugins), ``Regex``, ``BanSubstrings``, and for personal data the pattern recognizers of
``Anonymize`` — presidio's predefined recognizers and LLM Guard's own regular expressions — on
a blank spaCy English pipeline. The complete ``Anonymize`` also runs a DeBERTa NER model and
spaCy's ``en_core_web_sm``, both downloaded on first use, which no package registry serves;
without them it is cheaper than the real scanner, never dearer.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

LEFT_OUT = {
    "PromptInjection": "needs the deberta-v3 prompt-injection model from a model hub",
    "Anonymize (NER part)": "needs a DeBERTa NER model and spaCy en_core_web_sm (downloads)",
    "BanTopics": "needs a zero-shot classification model",
    "BanCode, Code, Gibberish, Language, Toxicity, BanCompetitors": "need models",
    "TokenLimit": "tiktoken downloads its encoding on first use",
    "Sentiment": "needs NLTK's vader lexicon (download)",
}


def pii_scanner() -> Any:
    """``Anonymize`` with its pattern recognizers only (see the module docstring)."""
    import spacy
    from llm_guard.input_scanners.anonymize import DEFAULT_ENTITY_TYPES, Anonymize
    from llm_guard.input_scanners.anonymize_helpers import get_regex_patterns
    from llm_guard.input_scanners.anonymize_helpers.analyzer import _add_recognizers
    from llm_guard.vault import Vault
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "en_core_web_sm"}])
    engine.nlp = {"en": spacy.blank("en")}  # tokens without tagger, parser or NER
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(nlp_engine=engine, languages=["en"])
    registry = _add_recognizers(registry, get_regex_patterns(None), [], ["en"])
    registry.remove_recognizer("SpacyRecognizer")
    # What ``get_analyzer`` builds, less the transformers recognizer and the spaCy model.
    analyzer = AnalyzerEngine(
        nlp_engine=engine,
        registry=registry,
        supported_languages=["en"],
        context_aware_enhancer=LemmaContextAwareEnhancer(
            context_similarity_factor=0.35, min_score_with_context_similarity=0.4
        ),
    )
    scanner = Anonymize.__new__(Anonymize)  # __init__ would load the NER model
    scanner._vault = Vault()
    # PERSON comes from the NER model only; CUSTOM needs hidden names, which are not given.
    scanner._entity_types = [e for e in DEFAULT_ENTITY_TYPES if e != "PERSON"]
    scanner._allowed_names = None
    scanner._preamble = ""
    scanner._use_faker = False
    scanner._threshold = 0.5
    scanner._language = "en"
    scanner._analyzer = analyzer
    return scanner


def main() -> int:
    job = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    from llm_guard import scan_prompt
    from llm_guard.input_scanners import BanSubstrings, Regex, Secrets
    from llm_guard.util import configure_logger

    # Logging is not what is measured: LLM Guard logs each scan at debug level by default.
    configure_logger(log_level="ERROR")
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

    scanners: dict[str, Any] = {
        "secrets": Secrets(),
        "regex": Regex(job["regex"]),
        "ban": BanSubstrings(job["ban"], match_type="str", case_sensitive=False),
        "pii": pii_scanner(),
    }

    def run_all(prompt: str) -> bool:
        _, valid, _ = scan_prompt(list(scanners.values()), prompt, fail_fast=False)
        return all(valid.values())

    prompts: list[str] = job["prompts"]
    rounds = int(job["rounds"])
    result: dict[str, Any] = {
        "versions": {
            name: version(name)
            for name in ("llm-guard", "presidio-analyzer", "bc-detect-secrets", "spacy", "torch")
        },
        "left_out": LEFT_OUT,
        "jobs": {},
    }
    jobs: dict[str, Any] = {
        name: (lambda p, s=scanner: bool(s.scan(p)[1])) for name, scanner in scanners.items()
    }
    jobs["all"] = run_all
    for name, scan in jobs.items():
        for prompt in prompts[:5]:  # warm-up: lazy imports, compiled patterns
            scan(prompt)
        times = [[0.0] * rounds for _ in prompts]
        flagged = [False] * len(prompts)
        for r in range(rounds):
            for i, prompt in enumerate(prompts):
                start = time.perf_counter()
                valid = scan(prompt)
                times[i][r] = time.perf_counter() - start
                flagged[i] = not valid
        result["jobs"][name] = {"times": times, "flagged": flagged}
    out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
