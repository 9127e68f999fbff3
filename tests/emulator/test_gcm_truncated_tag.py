"""HostCrypto.gcm_decrypt with GBCS's truncated 12-byte tag through a cached AESGCM
(emulator/crypto.py): held to cryptography's own GCM decryption with a short tag, and
every change to key, IV, ciphertext, AAD or tag refused."""

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from emulator.crypto import HostCrypto

CRYPTO = HostCrypto()


def _reference_decrypt(key, iv, ciphertext, aad, tag):
    decryptor = Cipher(algorithms.AES(key), modes.GCM(iv, tag, min_tag_length=len(tag))
                       ).decryptor()
    decryptor.authenticate_additional_data(aad)
    return decryptor.update(ciphertext) + decryptor.finalize()


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=12, max_size=12),
       st.binary(max_size=80), st.binary(max_size=60), st.sampled_from([4, 8, 12, 16]))
def test_decrypts_as_cryptographys_gcm_does(key, iv, plaintext, aad, tag_length):
    ciphertext, tag = CRYPTO.gcm_encrypt(key, iv, plaintext, aad)
    tag = tag[:tag_length]
    assert _reference_decrypt(key, iv, ciphertext, aad, tag) == plaintext
    assert CRYPTO.gcm_decrypt(key, iv, ciphertext, aad, tag) == plaintext


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=12, max_size=12),
       st.binary(min_size=1, max_size=80), st.binary(max_size=60),
       st.sampled_from(["key", "iv", "ciphertext", "aad", "tag"]), st.integers(0, 10 ** 6))
def test_any_change_is_refused(key, iv, plaintext, aad, what, where):
    ciphertext, tag = CRYPTO.gcm_encrypt(key, iv, plaintext, aad)
    parts = {"key": key, "iv": iv, "ciphertext": ciphertext, "aad": aad, "tag": tag[:12]}
    if what == "aad" and not aad:
        parts["aad"] = b"\x00"             # adding AAD where there was none is a change too
    else:
        damaged = bytearray(parts[what])
        damaged[where % len(damaged)] ^= 1 << (where % 8)
        parts[what] = bytes(damaged)
    args = (parts["key"], parts["iv"], parts["ciphertext"], parts["aad"], parts["tag"])
    with pytest.raises(InvalidTag):
        _reference_decrypt(*args)
    with pytest.raises(ValueError):
        CRYPTO.gcm_decrypt(*args)


def test_tags_shorter_than_four_bytes_are_refused():
    ciphertext, tag = CRYPTO.gcm_encrypt(bytes(16), bytes(12), b"abc", b"")
    with pytest.raises(ValueError):
        CRYPTO.gcm_decrypt(bytes(16), bytes(12), ciphertext, b"", tag[:3])
