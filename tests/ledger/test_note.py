"""C2SP signed-note / Go ``golang.org/x/mod/sumdb/note`` compatibility, and C2SP checkpoints.

The vectors are the published ones: the PeterNeumann and EnochRoot keys and signatures of Go's
``sumdb/note`` tests and package documentation, and the ``example.com/foo`` note of the C2SP
signed-note specification. Ed25519 signatures are deterministic, so signing reproduces them
byte for byte.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import MalformedNote, VerificationError
from custodes.ledger.checkpoint import Checkpoint
from custodes.ledger.note import (
    Note,
    NoteSignature,
    Signer,
    Verifier,
    key_id,
    open_note,
    parse_note,
    sign_note,
)

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_SIG_B64 = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
PETER_SIG = f"— PeterNeumann {PETER_SIG_B64}\n"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
ENOCH_SIG_B64 = (
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
)
ENOCH_SIG = f"— EnochRoot {ENOCH_SIG_B64}\n"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
NOTE = TEXT + "\n" + PETER_SIG

FOO_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
FOO_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


@pytest.fixture
def peter() -> Verifier:
    return Verifier.from_string(PETER_VKEY)


@pytest.fixture
def enoch() -> Verifier:
    return Verifier.from_string(ENOCH_VKEY)


# --------------------------------------------------------------------------------------------
# Keys.
# --------------------------------------------------------------------------------------------


def test_signer_key_round_trip() -> None:
    signer = Signer.from_string(PETER_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.seed == _b64(PETER_SKEY.split("+", 4)[4])[1:]
    assert signer.to_string() == PETER_SKEY
    assert signer.verifier().to_string() == PETER_VKEY


def test_verifier_key() -> None:
    verifier = Verifier.from_string(PETER_VKEY)
    assert verifier.name == "PeterNeumann"
    assert verifier.public_key == _b64("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")[1:]
    assert verifier.key_id == 0xC74F20A3
    # The derivation of the spec, computed independently: SHA-256(name || \n || 0x01 || key).
    digest = hashlib.sha256(b"PeterNeumann\n\x01" + verifier.public_key).digest()
    assert digest[:4] == bytes.fromhex("c74f20a3")
    assert key_id("PeterNeumann", verifier.public_key) == 0xC74F20A3
    assert verifier.to_string() == PETER_VKEY
    assert Verifier.from_string(ENOCH_VKEY).key_id == 0xAF0CFE78
    assert Verifier.from_string(FOO_VKEY).key_id == 0x530D903A


def test_verifier_key_whose_base64_holds_a_plus() -> None:
    # From transparency-dev/formats' tests: the key material itself contains '+'.
    vkey = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    verifier = Verifier.from_string(vkey)
    assert verifier.name == "TEST"
    assert verifier.key_id == 0x7997405C
    assert verifier.to_string() == vkey


_PETER_PUB = _b64("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")[1:]


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a3+",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # 7 hex digits
        "PeterNeumann+0c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # 9 hex digits
        "PeterNeumann+c74f20ag+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not hex
        "PeterNeuman+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # other name
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # empty name
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # truncated
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T!",  # bad char
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==",  # too long
        "PeterNeumann+c74f20a3+" + base64.b64encode(b"\x02" + _PETER_PUB).decode(),  # alg 2
        "PeterNeumann+c74f20a3+" + base64.b64encode(_PETER_PUB).decode(),  # no alg byte
        PETER_SKEY,
    ],
)
def test_mangled_verifier_keys_rejected(vkey: str) -> None:
    with pytest.raises(MalformedNote):
        Verifier.from_string(vkey)


_PETER_SEED = _b64("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]


@pytest.mark.parametrize(
    "skey",
    [
        "",
        "PRIVATE+KEY",
        "PRIVATE+KEY+PeterNeumann+c74f20a3",
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20ax+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+Peter Neumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeuman+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEZ+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "KEY+PRIVATE+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "private+key+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+" + base64.b64encode(b"\x02" + _PETER_SEED).decode(),
        "PRIVATE+KEY+PeterNeumann+c74f20a3+" + base64.b64encode(_PETER_SEED[:31]).decode(),
        PETER_VKEY,
    ],
)
def test_mangled_signer_keys_rejected(skey: str) -> None:
    with pytest.raises(MalformedNote):
        Signer.from_string(skey)


@pytest.mark.parametrize("name", ["", "a+b", "a b", "a\tb", "a\nb"])
def test_generate_rejects_bad_names(name: str) -> None:
    with pytest.raises(MalformedNote):
        Signer.generate(name)


def test_generated_keys_round_trip() -> None:
    signer = Signer.generate("example.com/ledger")
    again = Signer.from_string(signer.to_string())
    assert again == signer
    assert Verifier.from_string(signer.verifier().to_string()) == signer.verifier()
    assert len(signer.seed) == 32


# --------------------------------------------------------------------------------------------
# Signing and opening.
# --------------------------------------------------------------------------------------------


def test_sign_reproduces_go_vector() -> None:
    assert sign_note(TEXT, Signer.from_string(PETER_SKEY)) == NOTE


def test_open_go_vector(peter: Verifier) -> None:
    blob = _b64(PETER_SIG_B64)
    assert blob[:4] == bytes.fromhex("c74f20a3")
    assert open_note(NOTE, peter) == Note(
        TEXT, (NoteSignature("PeterNeumann", 0xC74F20A3, blob[4:]),)
    )


def test_open_c2sp_spec_example() -> None:
    note = open_note(FOO_NOTE, Verifier.from_string(FOO_VKEY))
    assert note.text == "This is an example message.\n"
    assert [(s.name, s.key_id) for s in note.signatures] == [("example.com/foo", 0x530D903A)]


def test_open_two_signatures(peter: Verifier, enoch: Verifier) -> None:
    msg = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    only_peter = open_note(msg, peter)
    assert only_peter.text == TEXT
    assert [s.name for s in only_peter.signatures] == ["PeterNeumann"]
    only_enoch = open_note(msg, enoch)
    assert [(s.name, s.key_id) for s in only_enoch.signatures] == [("EnochRoot", 0xAF0CFE78)]
    both = open_note(msg, peter, enoch)
    assert [s.name for s in both.signatures] == ["PeterNeumann", "EnochRoot"]
    assert both.signatures[1].signature == _b64(ENOCH_SIG_B64)[4:]


def test_parse_does_not_verify() -> None:
    note = parse_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG)
    assert note.text == TEXT
    assert [(s.name, s.key_id) for s in note.signatures] == [
        ("PeterNeumann", 0xC74F20A3),
        ("EnochRoot", 0xAF0CFE78),
    ]


def test_unknown_signature_with_bad_bytes_is_ignored(peter: Verifier) -> None:
    # Go's "duplicated verified and unverified signatures": signatures by keys the caller does
    # not trust are skipped, even when they would not verify.
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    note = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG + enoch_abcd, peter)
    assert {s.name for s in note.signatures} == {"PeterNeumann"}


def test_no_trusted_signature(peter: Verifier, enoch: Verifier) -> None:
    with pytest.raises(VerificationError):
        open_note(NOTE)
    with pytest.raises(VerificationError):
        open_note(NOTE, enoch)
    with pytest.raises(VerificationError):
        open_note(NOTE, Signer.generate("PeterNeumann").verifier())  # same name, other key
    with pytest.raises(VerificationError):
        open_note(TEXT + "\n" + ENOCH_SIG, peter)


def test_altered_text_rejected(peter: Verifier) -> None:
    with pytest.raises(VerificationError):
        open_note(NOTE.replace("cryptography", "cryptographY"), peter)
    with pytest.raises(VerificationError):
        open_note("x" + NOTE, peter)


def test_altered_signature_rejected(peter: Verifier) -> None:
    blob = bytearray(_b64(PETER_SIG_B64))
    blob[10] ^= 1
    forged = TEXT + "\n— PeterNeumann " + base64.b64encode(bytes(blob)).decode() + "\n"
    with pytest.raises(VerificationError):
        open_note(forged, peter)
    # Go's "invalid signature" case: four base64 characters inserted into the signature.
    with pytest.raises(VerificationError):
        open_note(TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], peter)


def test_signature_with_altered_key_id_is_not_trusted(peter: Verifier) -> None:
    blob = bytearray(_b64(PETER_SIG_B64))
    blob[3] ^= 1  # now claims key id c74f20a2
    msg = TEXT + "\n— PeterNeumann " + base64.b64encode(bytes(blob)).decode() + "\n"
    with pytest.raises(VerificationError):
        open_note(msg, peter)


def _malformed_messages() -> list[tuple[str, str]]:
    sig_body = PETER_SIG[len("— PeterNeumann ") :]
    return [
        ("text only", TEXT),
        ("no signature lines", TEXT + "\n"),
        ("no final newline", TEXT + "\n" + PETER_SIG[:-1]),
        ("control character", "\x01" + TEXT + "\n" + PETER_SIG),
        ("tab", TEXT.replace(" ", "\t", 1) + "\n" + PETER_SIG),
        ("carriage return", TEXT.replace("\n", "\r\n") + "\n" + PETER_SIG),
        ("NUL in signature", TEXT + "\n" + PETER_SIG[:-1] + "\x00\n"),
        ("bad name, no newline", TEXT + "\n— Bad Name " + sig_body[:-1]),
        ("name with a space", TEXT + "\n— Peter Neumann " + sig_body),
        ("name with a plus", TEXT + "\n— Peter+Neumann " + sig_body),
        ("unexpected line", TEXT + "\n" + PETER_SIG + "Unexpected line.\n"),
        ("ASCII hyphen", TEXT + "\n- PeterNeumann " + sig_body),
        ("en dash", TEXT + "\n– PeterNeumann " + sig_body),
        ("no space after dash", TEXT + "\n—PeterNeumann " + sig_body),
        ("no signature", TEXT + "\n— PeterNeumann\n"),
        ("empty signature", TEXT + "\n— PeterNeumann \n"),
        ("bad base64", TEXT + "\n— PeterNeumann x08go*ZJ\n"),
        ("unpadded base64", TEXT + "\n— PeterNeumann " + PETER_SIG_B64.rstrip("=") + "\n"),
        ("signature too short", TEXT + "\n— PeterNeumann AAAAAA==\n"),
        ("too many signatures", TEXT + "\n" + PETER_SIG * 101),
    ]


@pytest.mark.parametrize(
    "message", [m for _, m in _malformed_messages()], ids=[d for d, _ in _malformed_messages()]
)
def test_malformed_notes_rejected(message: str, peter: Verifier) -> None:
    with pytest.raises(MalformedNote):
        parse_note(message)
    with pytest.raises(MalformedNote):
        open_note(message, peter)


def test_hundred_signatures_allowed(peter: Verifier) -> None:
    note = open_note(TEXT + "\n" + PETER_SIG * 100, peter)
    assert note.text == TEXT


@pytest.mark.parametrize("text", ["", "no newline", "a\x01b\n", "tab\there\n"])
def test_sign_rejects_bad_text(text: str) -> None:
    with pytest.raises(MalformedNote):
        sign_note(text, Signer.from_string(PETER_SKEY))


@settings(max_examples=100, deadline=None)
@given(
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs",),
            blacklist_characters="\ufffd",
            min_codepoint=0x0A,
        ).filter(lambda c: c == "\n" or ord(c) >= 0x20),
        max_size=200,
    )
)
def test_sign_open_round_trip(body: str) -> None:
    signer = Signer.from_string(PETER_SKEY)
    text = body + "\n"
    note = open_note(sign_note(text, signer), signer.verifier())
    assert note.text == text


# --------------------------------------------------------------------------------------------
# Checkpoints.
# --------------------------------------------------------------------------------------------

ROOT = bytes(range(32))
ROOT_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def test_checkpoint_text_format() -> None:
    assert Checkpoint("example.com/log", 42, ROOT).text() == f"example.com/log\n42\n{ROOT_B64}\n"
    assert Checkpoint("o", 0, ROOT, ("ext one", "— two")).text() == (
        f"o\n0\n{ROOT_B64}\next one\n— two\n"
    )


def test_checkpoint_c2sp_example() -> None:
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = Checkpoint.from_text(text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.text() == text


_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), min_size=1
)
checkpoints = st.builds(
    Checkpoint,
    origin=_line,
    size=st.integers(0, 2**64),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_line, max_size=4).map(tuple),
)


@settings(max_examples=200, deadline=None)
@given(checkpoints)
def test_checkpoint_text_round_trip(checkpoint: Checkpoint) -> None:
    text = checkpoint.text()
    assert text.count("\n") == 3 + len(checkpoint.extensions)
    assert text.endswith("\n")
    lines = text.split("\n")
    assert lines[1] == str(checkpoint.size)
    assert base64.b64decode(lines[2], validate=True) == checkpoint.root
    assert Checkpoint.from_text(text) == checkpoint


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "origin\n",
        "origin\n1\n",
        f"origin\n1\n{ROOT_B64}",  # last line without its newline
        f"origin\n1\n{ROOT_B64}\next",  # extension line without its newline
        f"\n1\n{ROOT_B64}\n",  # empty origin
        f"origin\n\n{ROOT_B64}\n",  # empty size
        f"origin\n01\n{ROOT_B64}\n",  # leading zero
        f"origin\n00\n{ROOT_B64}\n",
        f"origin\n-1\n{ROOT_B64}\n",
        f"origin\n+1\n{ROOT_B64}\n",
        f"origin\n1.0\n{ROOT_B64}\n",
        f"origin\n1e3\n{ROOT_B64}\n",
        f"origin\n0x10\n{ROOT_B64}\n",
        f"origin\n 1\n{ROOT_B64}\n",
        f"origin\n1 \n{ROOT_B64}\n",
        f"origin\n1_000\n{ROOT_B64}\n",
        f"origin\n\u0661\u0662\n{ROOT_B64}\n",  # Arabic-Indic digits
        f"origin\n\u00b2\n{ROOT_B64}\n",  # superscript two
        f"origin\n\uff11\n{ROOT_B64}\n",  # fullwidth one
        "origin\n1\nnot base64!\n",
        f"origin\n1\n{ROOT_B64.rstrip('=')}\n",  # unpadded
        f"origin\n1\n{ROOT_B64[:-4]}\n",  # 30 bytes
        f"origin\n1\n{base64.b64encode(bytes(31)).decode()}\n",  # 31 bytes
        f"origin\n1\n{base64.b64encode(bytes(33)).decode()}\n",  # 33 bytes
        "origin\n1\n\n",  # empty root
        f"origin\n1\n{ROOT_B64}\n\n",  # empty extension line
        f"origin\n1\n{ROOT_B64}\next\n\n",
        f"origin\n1\n{ROOT_B64}\n\next\n",
    ],
)
def test_malformed_checkpoints_rejected(text: str) -> None:
    with pytest.raises(MalformedNote):
        Checkpoint.from_text(text)


def test_checkpoint_signed_and_opened() -> None:
    signer = Signer.from_string(PETER_SKEY)
    checkpoint = Checkpoint("example.com/log", 7, ROOT, ("extra",))
    signed = checkpoint.sign(signer)
    assert signed == sign_note(f"example.com/log\n7\n{ROOT_B64}\nextra\n", signer)
    assert Checkpoint.open(signed, signer.verifier()) == checkpoint


def test_checkpoint_signed_by_another_key_rejected() -> None:
    checkpoint = Checkpoint("example.com/log", 7, ROOT)
    signed = checkpoint.sign(Signer.generate("example.com/log"))
    with pytest.raises(VerificationError):
        Checkpoint.open(signed, Signer.generate("example.com/log").verifier())
    with pytest.raises(VerificationError):
        Checkpoint.open(signed, Verifier.from_string(PETER_VKEY))


def test_checkpoint_open_rejects_tampered_size() -> None:
    signer = Signer.from_string(PETER_SKEY)
    signed = Checkpoint("example.com/log", 7, ROOT).sign(signer)
    with pytest.raises(VerificationError):
        Checkpoint.open(signed.replace("\n7\n", "\n8\n", 1), signer.verifier())


def test_checkpoint_open_rejects_signed_non_checkpoint(peter: Verifier) -> None:
    # A genuine signed note whose text is not a checkpoint.
    with pytest.raises(MalformedNote):
        Checkpoint.open(NOTE, peter)
