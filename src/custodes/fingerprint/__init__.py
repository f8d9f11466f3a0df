"""Fingerprints of source code: find protected code after renaming, reformatting and edits.

:mod:`.tokenize` turns code into tokens (fourteen languages and a generic fallback),
:mod:`.winnow` turns tokens and normalised lines into winnowed fingerprints (and SCANOSS
``.wfp`` blocks), :mod:`.boilerplate` says which lines and files prove no copying.

The function ``tokenize`` re-exported here hides the module of that name as an attribute of this
package; ``from custodes.fingerprint.tokenize import …`` reaches the module.
"""

from typing import TYPE_CHECKING

# ``tokenize`` is imported here, not on first use: importing the submodule of that name would
# otherwise set this package's ``tokenize`` to the module, hiding the function.
from custodes.fingerprint.tokenize import (
    LANGUAGES,
    Token,
    TokenKind,
    abstract,
    token_spans,
    tokenize,
)

# The rest is imported on first use: packs pull in pydantic and the ledger's cryptography,
# which `custodes scan` and `custodes index add` never need.
_LAZY = {
    **dict.fromkeys(
        ("boilerplate_lines", "classify", "licence_header_lines"), "custodes.fingerprint.boilerplate"
    ),
    **dict.fromkeys(("Collection", "Index", "Mode", "add_paths"), "custodes.fingerprint.index"),
    **dict.fromkeys(("Match", "Matcher", "MatchOptions"), "custodes.fingerprint.match"),
    **dict.fromkeys(
        ("Pack", "export_pack", "import_pack", "read_pack"), "custodes.fingerprint.pack"
    ),
    **dict.fromkeys(
        (
            "FINGERPRINT_VERSION", "K_RAW", "K_TOKENS", "W_RAW", "W_TOKENS", "FileFingerprints",
            "Fingerprint", "Layer", "fingerprint", "kgram_hashes", "symbol_value", "wfp",
        ),
        "custodes.fingerprint.winnow",
    ),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'custodes.fingerprint' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from custodes.fingerprint.boilerplate import (
        boilerplate_lines,
        classify,
        licence_header_lines,
    )
    from custodes.fingerprint.index import Collection, Index, Mode, add_paths
    from custodes.fingerprint.match import Match, Matcher, MatchOptions
    from custodes.fingerprint.pack import Pack, export_pack, import_pack, read_pack
    from custodes.fingerprint.winnow import (
        FINGERPRINT_VERSION,
        K_RAW,
        K_TOKENS,
        W_RAW,
        W_TOKENS,
        FileFingerprints,
        Fingerprint,
        Layer,
        fingerprint,
        kgram_hashes,
        symbol_value,
        wfp,
    )

__all__ = [
    "FINGERPRINT_VERSION",
    "K_RAW",
    "K_TOKENS",
    "LANGUAGES",
    "W_RAW",
    "W_TOKENS",
    "Collection",
    "FileFingerprints",
    "Fingerprint",
    "Index",
    "Layer",
    "Match",
    "MatchOptions",
    "Matcher",
    "Mode",
    "Pack",
    "Token",
    "TokenKind",
    "abstract",
    "add_paths",
    "boilerplate_lines",
    "classify",
    "export_pack",
    "fingerprint",
    "import_pack",
    "kgram_hashes",
    "licence_header_lines",
    "read_pack",
    "symbol_value",
    "token_spans",
    "tokenize",
    "wfp",
]
