"""custodes: a self-hosted trust layer for AI-era software.

One engine (policy, detectors, findings, decision) records every decision in a tamper-evident
ledger. This module is the public API; everything not named in ``__all__`` is private.
"""

from typing import TYPE_CHECKING

from custodes.errors import Error, UsageError, VerificationError

__version__ = "0.1.0"

__all__ = [
    "Caller",
    "Checkpoint",
    "ConsistencyProof",
    "Error",
    "Guard",
    "GuardViolation",
    "InclusionProof",
    "Ledger",
    "Policy",
    "Receipt",
    "Signer",
    "UsageError",
    "VerificationError",
    "Verifier",
    "VerifyReport",
    "__version__",
    "load_policy",
    "verify_ledger",
]

# The guard and the policy pull in every detector and the policy toolchain; imported on first
# use, so that `import custodes` (and every `custodes ledger` command) stays quick.
_LAZY = {
    **dict.fromkeys(
        (
            "Checkpoint", "ConsistencyProof", "InclusionProof", "Ledger", "Receipt", "Signer",
            "Verifier", "VerifyReport", "verify_ledger",
        ),
        "custodes.ledger",
    ),  # the ledger pulls in cryptography: a scan that records nothing need not load it
    "Caller": "custodes.guard.pipeline",
    "Guard": "custodes.guard.pipeline",
    "GuardViolation": "custodes.guard.pipeline",
    "Policy": "custodes.policy",
    "load_policy": "custodes.policy",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'custodes' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from custodes.guard.pipeline import Caller, Guard, GuardViolation
    from custodes.ledger import (
        Checkpoint,
        ConsistencyProof,
        InclusionProof,
        Ledger,
        Receipt,
        Signer,
        Verifier,
        VerifyReport,
        verify_ledger,
    )
    from custodes.policy import Policy, load_policy
