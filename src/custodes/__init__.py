"""custodes: a self-hosted trust layer for AI-era software.

One engine (policy, detectors, findings, decision) records every decision in a tamper-evident
ledger. This module is the public API; everything not named in ``__all__`` is private.
"""

from custodes.errors import Error, UsageError, VerificationError
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

__version__ = "0.1.0"

__all__ = [
    "Checkpoint",
    "ConsistencyProof",
    "Error",
    "InclusionProof",
    "Ledger",
    "Receipt",
    "Signer",
    "UsageError",
    "VerificationError",
    "Verifier",
    "VerifyReport",
    "__version__",
    "verify_ledger",
]
