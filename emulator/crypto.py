"""The host implementation of the device core's injected crypto, on `cryptography`.

Implements the interface documented in `firmware/gbcs/security.py`: ECDSA P-256 with raw
r||s signatures (RFC 6979 nonces), static-static ECDH, SHA-256 and AES-128-GCM. Also reads
an SMKI keystore folder in the RTDS layout (`<eui>-{ds,ka}.pem` certificates,
`<eui>-{ds,ka}.key` private keys, `-pp-ka` for a supplier's prepayment key-agreement pair).
"""

from __future__ import annotations

import hashlib
import hmac
import pathlib
from functools import lru_cache

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography import x509

from emulator.newest import NewestKept

CURVE = ec.SECP256R1()
# RFC 6979 nonces: the same key and message give the same signature, so a lab run from a
# seed gives the same bytes every time (ARCHITECTURE.md principle 7), and the same bytes as
# BoardCrypto on a dev board. Verification does not depend on how the nonce was chosen.
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)   # one for every call
SHARED_SECRET_CACHE = 4096
MESSAGE_KEY_CACHE = 64


def public_xy(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The 64-byte x||y form GBCS carries (uncompressed point without the 04 prefix)."""
    point = public_key.public_bytes(serialization.Encoding.X962,
                                    serialization.PublicFormat.UncompressedPoint)
    return point[1:]


@lru_cache(maxsize=1024)
def _public_key(xy: bytes) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(CURVE, b"\x04" + xy)


class HostCrypto:
    """`cryptography`-backed primitives. Private keys are `ec.EllipticCurvePrivateKey`."""

    def __init__(self):
        # The static-static ECDH secret between two parties never changes: cache it
        # (the dominant cost of a MAC'd message otherwise).
        # Keyed by id() of the key object, and the entry holds the object itself: while it
        # is cached the id cannot be reused by another key. Bounded, oldest out first.
        self._shared_secrets = NewestKept(SHARED_SECRET_CACHE)
        # GBCS derives a fresh key per message (the KDF takes the counter), used by the
        # sender and then the receiver: a short memory of recent ones is all that pays
        self._aes = NewestKept(MESSAGE_KEY_CACHE)

    def sha256(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def ecdh(self, private_key: ec.EllipticCurvePrivateKey, peer_xy: bytes) -> bytes:
        cache_key = (id(private_key), bytes(peer_xy))
        entry = self._shared_secrets.get(cache_key)
        if entry is not None and entry[0] is private_key:
            return entry[1]
        secret = private_key.exchange(ec.ECDH(), _public_key(bytes(peer_xy)))
        self._shared_secrets[cache_key] = (private_key, secret)
        return secret

    def ecdsa_sign(self, private_key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
        r, s = decode_dss_signature(private_key.sign(data, _ECDSA_SHA256))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def ecdsa_verify(self, public_xy_: bytes, data: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                   int.from_bytes(signature[32:], "big"))
        try:
            _public_key(bytes(public_xy_)).verify(der, bytes(data), _ECDSA_SHA256)
        except (InvalidSignature, ValueError):
            return False
        return True

    def gmac(self, key: bytes, iv: bytes, aad: bytes) -> bytes:
        """GCM over no plaintext: the 16-byte tag (AESGCM returns just the tag)."""
        return self._aead(key).encrypt(iv, b"", aad)

    def _aead(self, key: bytes) -> AESGCM:
        aead = self._aes.get(key)
        if aead is None:
            aead = self._aes[key] = AESGCM(key)
        return aead

    def gcm_encrypt(self, key: bytes, iv: bytes, plaintext: bytes, aad: bytes):
        sealed = self._aead(key).encrypt(iv, plaintext, aad)
        return sealed[:-16], sealed[-16:]

    def gcm_decrypt(self, key: bytes, iv: bytes, ciphertext: bytes, aad: bytes, tag: bytes) -> bytes:
        """Accepts a truncated (12-byte) tag as GBCS uses; raises ValueError on failure.

        AESGCM checks only full 16-byte tags, so with a shorter one: GCM encryption is
        the CTR keystream XOR, so encrypting the ciphertext gives the plaintext; encrypting
        that plaintext gives the full tag over (aad, ciphertext), compared in constant time
        on the received prefix (what a truncated-tag GCM decryption checks), and nothing
        is returned unless it matches. Two calls on a cached AESGCM cost less than one
        Cipher context."""
        if len(tag) == 16:
            try:
                return self._aead(key).decrypt(iv, bytes(ciphertext) + bytes(tag), aad)
            except InvalidTag as exc:
                raise ValueError("GCM tag does not verify") from exc
        if not 4 <= len(tag) <= 16:
            raise ValueError("GCM tag of %d bytes: 4 to 16 accepted" % len(tag))
        aead = self._aead(key)
        plaintext = aead.encrypt(iv, bytes(ciphertext), None)[:-16]
        expected = aead.encrypt(iv, plaintext, aad)[-16:]
        if not hmac.compare_digest(expected[:len(tag)], bytes(tag)):
            raise ValueError("GCM tag does not verify")
        return plaintext


class KeyStore:
    """A folder of SMKI certificates and private keys in the RTDS layout, by EUI-64."""

    def __init__(self, folder: str | pathlib.Path):
        self.folder = pathlib.Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"keystore folder {self.folder} does not exist")

    def _path(self, eui: bytes, usage: str, suffix: str) -> pathlib.Path:
        return self.folder / f"{eui.hex()}-{usage}.{suffix}"

    def public_key(self, eui: bytes, usage: str) -> bytes | None:
        """x||y of the certificate's key, or of the private key when only that is held."""
        cert_path = self._path(eui, usage, "pem")
        if cert_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            return public_xy(cert.public_key())
        private = self.private_key(eui, usage)
        return None if private is None else public_xy(private.public_key())

    def private_key(self, eui: bytes, usage: str) -> ec.EllipticCurvePrivateKey | None:
        key_path = self._path(eui, usage, "key")
        if not key_path.exists():
            return None
        return _load_private_key(str(key_path))

    def is_device(self, eui: bytes) -> bool:
        """Device certificates have an empty subject and name the device in the SAN
        (hardwareModuleName); organisation certificates carry OU=role."""
        for usage in ("ka", "ds"):
            cert = self.certificate(eui, usage)
            if cert is not None:
                return len(cert.subject) == 0
        return False

    def certificate(self, eui: bytes, usage: str) -> x509.Certificate | None:
        cert_path = self._path(eui, usage, "pem")
        return x509.load_pem_x509_certificate(cert_path.read_bytes()) if cert_path.exists() else None


@lru_cache(maxsize=256)
def _load_private_key(path: str) -> ec.EllipticCurvePrivateKey:
    return serialization.load_pem_private_key(pathlib.Path(path).read_bytes(), password=None)
