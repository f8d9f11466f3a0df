"""Fingerprints of source code: find protected code after renaming, reformatting and edits.

:mod:`.tokenize` turns code into tokens (fourteen languages and a generic fallback),
:mod:`.winnow` turns tokens and normalised lines into winnowed fingerprints (and SCANOSS
``.wfp`` blocks), :mod:`.boilerplate` says which lines and files prove no copying.

The function ``tokenize`` re-exported here hides the module of that name as an attribute of this
package; ``from custodes.fingerprint.tokenize import …`` reaches the module.
"""

from custodes.fingerprint.boilerplate import boilerplate_lines, classify, licence_header_lines
from custodes.fingerprint.index import Collection, Index, Mode, add_paths
from custodes.fingerprint.match import Match, Matcher, MatchOptions
from custodes.fingerprint.pack import Pack, export_pack, import_pack, read_pack
from custodes.fingerprint.tokenize import (
    LANGUAGES,
    Token,
    TokenKind,
    abstract,
    token_spans,
    tokenize,
)
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
