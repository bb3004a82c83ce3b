"""GitHub App authentication: RS256 JSON web tokens, checked the way api.github.com checks them.

A GitHub App proves who it is with a JWT signed RS256 by the app's private key, ``iss`` set to
the app id (or its client id), ``iat`` not in the future and ``exp`` at most ten minutes ahead.
The emulator must really verify the signature: a client that signs with the wrong key, or
forgets to sign, has to fail here as it would fail against GitHub.

Verification uses the ``cryptography`` package when it is importable. When it is not (the test
virtualenv does not ship it, nor ``pyjwt``), the same RSASSA-PKCS1-v1_5 / SHA-256 verification is
done with the standard library: it is a modular exponentiation and a byte comparison, so there is
no reason to fall back to checking only ``iss`` and ``exp``.

``AppKeyPair`` makes throwaway RSA keys and signs JWTs with them, in pure Python, so that tests
need no crypto library either. It is for tests only: key generation uses ``secrets`` and
Miller-Rabin, which is sound, but nothing here is hardened against timing attacks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "AppKeyPair",
    "JWTError",
    "RSAPublicKey",
    "b64url_decode",
    "b64url_encode",
    "decode_jwt",
    "load_rsa_public_key",
    "verify_rs256",
]

# DER of DigestInfo{ AlgorithmIdentifier{ sha256, NULL }, OCTET STRING(32) }, RFC 8017 §9.2 note 1.
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
# OID 1.2.840.113549.1.1.1 (rsaEncryption), DER-encoded with its tag.
_RSA_ENCRYPTION_OID = bytes.fromhex("06092a864886f70d010101")


class JWTError(Exception):
    """A token GitHub would refuse; the message is the one GitHub answers with (401)."""


@dataclass(frozen=True)
class RSAPublicKey:
    """The two numbers an RS256 verification needs, plus the PEM they came from."""

    n: int
    e: int
    pem: bytes


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, as JWTs write it (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url_encode`; padding is optional, as in JWTs."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- a minimal DER reader and writer: only what RSA keys use -------------------------------


def _der_read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """Read one TLV at ``pos``: (tag, contents, position after it)."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos:end], end


def _der_children(contents: bytes) -> list[tuple[int, bytes]]:
    """The TLVs inside a constructed value, in order."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(contents):
        tag, value, pos = _der_read(contents, pos)
        out.append((tag, value))
    return out


def _der_sequence(data: bytes) -> list[tuple[int, bytes]]:
    tag, contents, end = _der_read(data, 0)
    if tag != 0x30 or end != len(data):
        raise ValueError("expected one DER SEQUENCE")
    return _der_children(contents)


def _der_len(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_tlv(tag: int, contents: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(contents)) + contents


def _der_int(value: int) -> bytes:
    # A positive INTEGER gets a leading zero byte when its top bit is set (two's complement).
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return _der_tlv(0x02, raw)


def _pem_blocks(pem: bytes) -> tuple[str, bytes]:
    """(label, DER) of the first PEM block."""
    text = pem.decode("ascii").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("-----BEGIN ") or not lines[0].endswith("-----"):
        raise ValueError("not a PEM block")
    label = lines[0][len("-----BEGIN ") : -len("-----")]
    try:
        end = lines.index(f"-----END {label}-----")
    except ValueError as exc:
        raise ValueError("PEM block has no END line") from exc
    return label, base64.b64decode("".join(lines[1:end]), validate=True)


def _pem(label: str, der: bytes) -> bytes:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"
    ).encode()


def _ints(children: list[tuple[int, bytes]]) -> list[int]:
    return [int.from_bytes(value, "big", signed=True) for tag, value in children if tag == 0x02]


def load_rsa_public_key(pem: bytes) -> RSAPublicKey:
    """Read (n, e) from a PEM: a public key (SPKI or PKCS#1) or a private key (PKCS#1 or #8).

    GitHub hands an app its *private* key as ``-----BEGIN RSA PRIVATE KEY-----``; accepting that
    too lets a test give the emulator the very file the client signs with.
    """
    label, der = _pem_blocks(pem)
    if label == "RSA PUBLIC KEY":
        n, e = _ints(_der_sequence(der))[:2]
    elif label == "PUBLIC KEY":
        algorithm, bits = _der_sequence(der)[:2]
        if _RSA_ENCRYPTION_OID not in algorithm[1] or bits[0] != 0x03:
            raise ValueError("not an RSA public key")
        n, e = _ints(_der_sequence(bits[1][1:]))[:2]
    elif label == "RSA PRIVATE KEY":
        n, e = _ints(_der_sequence(der))[1:3]
    elif label == "PRIVATE KEY":
        children = _der_sequence(der)
        if _RSA_ENCRYPTION_OID not in children[1][1] or children[2][0] != 0x04:
            raise ValueError("not an RSA private key")
        n, e = _ints(_der_sequence(children[2][1]))[1:3]
    else:
        raise ValueError(f"unsupported PEM block {label!r}")
    if n <= 0 or e <= 1:
        raise ValueError("bad RSA numbers")
    return RSAPublicKey(n=n, e=e, pem=pem)


def _emsa_pkcs1_v15_sha256(message: bytes, k: int) -> bytes:
    """The encoded message RSASSA-PKCS1-v1_5 signs (RFC 8017 §9.2)."""
    t = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    if k < len(t) + 11:
        raise ValueError("RSA key too short for SHA-256")
    return b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t


def _verify_with_cryptography(key: RSAPublicKey, message: bytes, signature: bytes) -> bool | None:
    """Verify with ``cryptography`` if importable; ``None`` when it is not there."""
    try:
        serialization: Any = importlib.import_module("cryptography.hazmat.primitives.serialization")
        padding: Any = importlib.import_module("cryptography.hazmat.primitives.asymmetric.padding")
        hashes: Any = importlib.import_module("cryptography.hazmat.primitives.hashes")
        exceptions: Any = importlib.import_module("cryptography.exceptions")
    except ImportError:
        return None
    label, _ = _pem_blocks(key.pem)
    if "PRIVATE" in label:
        public = serialization.load_pem_private_key(key.pem, password=None).public_key()
    else:
        public = serialization.load_pem_public_key(key.pem)
    try:
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except exceptions.InvalidSignature:
        return False
    return True


def verify_rs256(
    key: RSAPublicKey, message: bytes, signature: bytes, *, stdlib: bool = False
) -> bool:
    """Whether ``signature`` is an RS256 signature of ``message`` by ``key``.

    ``stdlib=True`` skips ``cryptography`` even when it is installed (the tests use it to check
    that both paths agree).
    """
    if not stdlib:
        verdict = _verify_with_cryptography(key, message, signature)
        if verdict is not None:
            return verdict
    k = (key.n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    s = int.from_bytes(signature, "big")
    if s >= key.n:
        return False
    em = pow(s, key.e, key.n).to_bytes(k, "big")
    return hmac.compare_digest(em, _emsa_pkcs1_v15_sha256(message, k))


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split a compact JWS: (header, claims, signing input, signature). Nothing is verified."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JWTError("A JSON web token could not be decoded")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise JWTError("A JSON web token could not be decoded") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JWTError("A JSON web token could not be decoded")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def looks_like_jwt(token: str) -> bool:
    """GitHub tells JWTs from tokens by shape: three base64url parts starting with a JSON header."""
    return token.count(".") == 2 and token.startswith("eyJ")


# --- test keys --------------------------------------------------------------------------------

_SMALL_PRIMES = [p for p in range(3, 2000, 2) if all(p % d for d in range(3, int(p**0.5) + 1, 2))]


def _probably_prime(n: int, rounds: int = 40) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return n in _SMALL_PRIMES
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for _ in range(rounds):
        a = secrets.randbelow(n - 3) + 2
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _random_prime(bits: int, e: int) -> int:
    while True:
        candidate = secrets.randbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
        if candidate % e != 1 and _probably_prime(candidate):
            return candidate


@dataclass(frozen=True)
class AppKeyPair:
    """A throwaway RSA key for a test GitHub App, with the PEMs GitHub and a client would hold."""

    n: int
    e: int
    d: int
    p: int
    q: int

    @classmethod
    def generate(cls, bits: int = 2048) -> AppKeyPair:
        """A fresh key; 1024 bits is plenty for tests and takes a fraction of a second."""
        e = 65537
        while True:
            p = _random_prime(bits // 2, e)
            q = _random_prime(bits - bits // 2, e)
            n = p * q
            if p != q and n.bit_length() == bits:
                break
        d = pow(e, -1, (p - 1) * (q - 1))
        return cls(n=n, e=e, d=d, p=p, q=q)

    @property
    def private_pem(self) -> bytes:
        """PKCS#1 ``RSA PRIVATE KEY``, the format of the key GitHub lets an app download."""
        numbers = [
            0,
            self.n,
            self.e,
            self.d,
            self.p,
            self.q,
            self.d % (self.p - 1),
            self.d % (self.q - 1),
            pow(self.q, -1, self.p),
        ]
        return _pem("RSA PRIVATE KEY", _der_tlv(0x30, b"".join(_der_int(x) for x in numbers)))

    @property
    def public_pem(self) -> bytes:
        """SubjectPublicKeyInfo ``PUBLIC KEY``."""
        rsa_key = _der_tlv(0x30, _der_int(self.n) + _der_int(self.e))
        algorithm = _der_tlv(0x30, _RSA_ENCRYPTION_OID + b"\x05\x00")
        return _pem("PUBLIC KEY", _der_tlv(0x30, algorithm + _der_tlv(0x03, b"\x00" + rsa_key)))

    def sign(self, message: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2.1)."""
        k = (self.n.bit_length() + 7) // 8
        m = int.from_bytes(_emsa_pkcs1_v15_sha256(message, k), "big")
        return pow(m, self.d, self.n).to_bytes(k, "big")

    def jwt(
        self,
        app_id: int | str,
        now: datetime,
        *,
        backdate: int = 60,
        lifetime: int = 540,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """An app JWT as GitHub documents it: ``iat`` a minute back, ``exp`` under ten minutes."""
        issued = int(now.timestamp()) - backdate
        body: dict[str, Any] = {"iat": issued, "exp": issued + backdate + lifetime, "iss": app_id}
        body.update(claims or {})
        header = b64url_encode(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        payload = b64url_encode(json.dumps(body, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode("ascii")
        return f"{header}.{payload}.{b64url_encode(self.sign(signing_input))}"
