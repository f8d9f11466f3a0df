"""The tamper-evident decision ledger: RFC 9162 Merkle tree, C2SP signed checkpoints."""

from custodes.ledger.checkpoint import Checkpoint
from custodes.ledger.entry import Entry, Payload
from custodes.ledger.log import (
    ConsistencyProof,
    InclusionProof,
    Ledger,
    Receipt,
    Receipts,
    open_store,
)
from custodes.ledger.note import Signer, Verifier, open_note, sign_note
from custodes.ledger.verify import VerifyReport, verify_ledger

__all__ = [
    "Checkpoint",
    "ConsistencyProof",
    "Entry",
    "InclusionProof",
    "Ledger",
    "Payload",
    "Receipt",
    "Receipts",
    "Signer",
    "Verifier",
    "VerifyReport",
    "open_note",
    "open_store",
    "sign_note",
    "verify_ledger",
]
