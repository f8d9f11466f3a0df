"""The public API is what custodes.__all__ names; changing it is a deliberate act."""

import custodes
import custodes.errors
import custodes.ledger


def test_top_level_all_is_pinned() -> None:
    assert sorted(custodes.__all__) == [
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
    for name in custodes.__all__:
        assert hasattr(custodes, name), name


def test_ledger_package_all_is_pinned() -> None:
    assert sorted(custodes.ledger.__all__) == [
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


def test_error_tree_maps_to_exit_codes() -> None:
    errors = custodes.errors
    assert errors.Error("x").exit_code == 3
    assert errors.VerificationError("x").exit_code == 1
    usage = [
        errors.UsageError,
        errors.LedgerNotFound,
        errors.LedgerCorrupt,
        errors.LedgerExists,
        errors.KeyFileError,
        errors.KeyMismatch,
        errors.IndexOutOfRange,
        errors.InvalidEntry,
        errors.MalformedNote,
    ]
    for cls in usage:
        assert issubclass(cls, errors.UsageError)
        assert cls("x").exit_code == 2
    assert not issubclass(errors.VerificationError, errors.UsageError)


def test_diagnostics_joins_message_and_hint() -> None:
    err = custodes.errors.UsageError("no ledger at a.db", hint="create one with init")
    assert err.diagnostics() == "no ledger at a.db; create one with init"
    assert custodes.errors.Error("plain").diagnostics() == "plain"
