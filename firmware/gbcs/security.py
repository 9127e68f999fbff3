"""GBCS message protection: key derivation, MAC, signature (GBCS v4 clauses 4.3, 6.2).

The primitives are injected (ARCHITECTURE.md principle 4). `crypto` is any object with:

    sha256(data) -> 32 bytes
    ecdh(private_key, peer_public_xy) -> shared secret Z (32 bytes)
    ecdsa_sign(private_key, data) -> 64 bytes r||s (SHA-256 inside)
    ecdsa_verify(public_xy, data, signature) -> bool
    gmac(key, iv, aad) -> 16-byte GCM tag over no plaintext
    gcm_encrypt(key, iv, plaintext, aad) -> (ciphertext, tag16)
    gcm_decrypt(key, iv, ciphertext, aad, tag) -> plaintext, raises ValueError if the tag fails

Keys are opaque handles to the implementation (a board may keep them in a secure element);
public keys travel as the 64-byte x||y.
"""

import struct

from firmware.gbcs.envelope import MAC_LENGTH, SECURITY_HEADER

# SP800-56A single-step KDF OtherInfo prefix: the GBCS AlgorithmID (GBCS 4.3.3.4.1)
KDF_ALGORITHM_ID = b"\x60\x85\x74\x06\x08\x03\x00"
KDF_MODE_PAYLOAD_ENCRYPTION = 4
MAC_AAD_PREFIX = SECURITY_HEADER + b"\x00"   # 11 00 00 00 00 00 (checked on GBCS 18.4)
ENCRYPTED_FIELD_TAG = 0x31


def derive_key(crypto, shared_secret, originator, mode, originator_counter, recipient):
    """AES-128 key from the static-static ECDH secret (SP800-56A 5.8.1, GBCS 4.3.3.4)."""
    return crypto.sha256(b"".join((
        _KDF_ROUND_ONE, shared_secret, KDF_ALGORITHM_ID, originator, bytes((9, mode)),
        struct.pack(">II", originator_counter >> 32, originator_counter & 0xFFFFFFFF),
        recipient)))[:16]


_KDF_ROUND_ONE = b"\x00\x00\x00\x01"     # the single-step KDF's counter: one hash


def mac_iv(originator):
    return originator + b"\x00\x00\x00\x00"


def kdf_party_fields(message):
    """Originator, counter and recipient as the KDF uses them for this message's MAC.

    The CRA flag is the mode; the transaction's own originator, counter and recipient
    feed the KDF (checked against RTDS commands from the ACB and device responses).
    """
    return message.originator, message.cra_flag, message.originator_counter, message.recipient


def compute_mac(crypto, key, message):
    return crypto.gmac(key, mac_iv(message.originator), MAC_AAD_PREFIX + message.body())[:MAC_LENGTH]


def mac_key(crypto, shared_secret, message):
    originator, mode, counter, recipient = kdf_party_fields(message)
    return derive_key(crypto, shared_secret, originator, mode, counter, recipient)


def verify_mac(crypto, shared_secret, message):
    if message.mac is None:
        return False
    expected = compute_mac(crypto, mac_key(crypto, shared_secret, message), message)
    return _equal(expected, message.mac)


def protect_mac(crypto, shared_secret, message):
    message.mac_protected = True
    message.mac = compute_mac(crypto, mac_key(crypto, shared_secret, message), message)
    return message


def sign(crypto, private_key, message):
    message.signature = crypto.ecdsa_sign(private_key, message.signed_part())
    message.signature_field = True
    return message


def verify_signature(crypto, public_xy, message):
    if message.signature is None:
        return False
    return crypto.ecdsa_verify(public_xy, message.signed_part(), message.signature)


def _equal(a, b):
    """Constant-time comparison: the MAC check must not leak how many bytes matched."""
    if len(a) != len(b):
        return False
    if len(a) == MAC_LENGTH:                # three words, whatever they hold
        a0, a1, a2 = struct.unpack(">III", bytes(a))
        b0, b1, b2 = struct.unpack(">III", bytes(b))
        return ((a0 ^ b0) | (a1 ^ b1) | (a2 ^ b2)) == 0
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
