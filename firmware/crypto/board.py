"""The board's implementation of the device core's injected crypto (ARCHITECTURE.md
principle 4; the interface is the docstring of `firmware/gbcs/security.py`).

    crypto = BoardCrypto()
    key = PrivateKey(0x3A6B...)            # or a plain int in [1, n-1]
    crypto.ecdsa_sign(key, data)           # 64 bytes r||s, RFC 6979 nonce (reproducible)

Pure Python over `hashlib.sha256` and `cryptolib.aes` (firmware/crypto/p256.py and
gcm.py), so it runs inside the `micropython` binary and on a board. Public keys travel
as the 64-byte x||y, as everywhere in the core.

Two caches, both bounded for a board's heap: the static-static ECDH secret per (own key,
peer) pair, which GBCS agrees again for every MAC'd message, and the odd-multiples table
of each DS public key that signatures are verified against (the trust anchors).

Heap, measured on the unix port with the modules as mpy-cross bytecode: about 19 KB to
load them from a filesystem (nothing when frozen into flash), about 7 KB for G's table,
one verify table and one cached secret; sign, verify, ECDH and GCM all run within
`micropython -X heapsize=64K`.
"""

import hashlib

from firmware.crypto import gcm, p256

CACHE_LIMIT = 16


class PrivateKey:
    """A P-256 private scalar and its public x||y (computed once, on first use)."""

    def __init__(self, d):
        if not (1 <= d < p256.N):
            raise ValueError("private key out of range [1, n-1]")
        self.d = d
        self._public = None

    @classmethod
    def from_bytes(cls, raw32):
        return cls(int.from_bytes(bytes(raw32), "big"))

    @property
    def public_xy(self):
        if self._public is None:
            self._public = p256.encode_point(p256.public_key(self.d))
        return self._public


def _scalar(private_key):
    return private_key.d if isinstance(private_key, PrivateKey) else private_key


def _bounded_put(cache, key, value):
    if len(cache) >= CACHE_LIMIT:
        cache.clear()                      # small and rare: no LRU bookkeeping on a board
    cache[key] = value


class BoardCrypto:
    def __init__(self):
        self._shared_secrets = {}
        self._verify_tables = {}

    def sha256(self, data):
        return hashlib.sha256(bytes(data)).digest()

    def ecdh(self, private_key, peer_xy):
        """Z of SP 800-56A static-static ECDH; ValueError (P256Error) for a peer key
        that is not a P-256 point."""
        d = _scalar(private_key)
        peer = bytes(peer_xy)
        cache_key = (d, peer)
        secret = self._shared_secrets.get(cache_key)
        if secret is None:
            secret = p256.ecdh(d, peer)
            _bounded_put(self._shared_secrets, cache_key, secret)
        return secret

    def ecdsa_sign(self, private_key, data):
        return p256.sign(_scalar(private_key), data)

    def ecdsa_verify(self, public_xy, data, signature):
        public = bytes(public_xy)
        table = self._verify_tables.get(public)
        if table is None:
            try:
                table = p256.odd_multiples(p256.decode_point(public))
            except ValueError:
                return False
            _bounded_put(self._verify_tables, public, table)
        return p256.verify(public, data, bytes(signature), table)

    def gmac(self, key, iv, aad):
        return gcm.gmac(key, iv, aad)

    def gcm_encrypt(self, key, iv, plaintext, aad):
        return gcm.gcm_encrypt(key, iv, plaintext, aad)

    def gcm_decrypt(self, key, iv, ciphertext, aad, tag):
        return gcm.gcm_decrypt(key, iv, ciphertext, aad, tag)
