"""Detectors: each turns a :class:`~custodes.subject.Subject` into what it finds.

``interface`` holds the protocol the engine calls; ``secrets`` finds credentials (API keys,
tokens, private keys, passwords) and reports them redacted, never in clear.
"""

__all__: list[str] = []
