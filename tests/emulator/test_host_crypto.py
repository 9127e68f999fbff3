"""HostCrypto: its ECDH cache never hands one key pair's secret to another; its signatures
are RFC 6979's."""

from cryptography.hazmat.primitives.asymmetric import ec

from emulator.crypto import HostCrypto, public_xy


def test_ecdh_cache_survives_short_lived_keys():
    crypto = HostCrypto()
    peer = ec.generate_private_key(ec.SECP256R1())
    peer_xy = public_xy(peer.public_key())
    for _ in range(300):
        mine = ec.generate_private_key(ec.SECP256R1())   # freed each round: ids get reused
        expected = mine.exchange(ec.ECDH(), peer.public_key())
        assert crypto.ecdh(mine, peer_xy) == expected


def test_ecdh_is_symmetric_and_cached():
    crypto = HostCrypto()
    a, b = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    first = crypto.ecdh(a, public_xy(b.public_key()))
    assert crypto.ecdh(b, public_xy(a.public_key())) == first
    assert crypto.ecdh(a, public_xy(b.public_key())) == first


def test_signatures_are_rfc6979_the_same_bytes_every_time_and_as_the_board_makes_them():
    from firmware.crypto.board import BoardCrypto, PrivateKey

    crypto = HostCrypto()
    key = ec.derive_private_key(0xC0FFEE, ec.SECP256R1())
    data = b"the signed part of a GBCS command"
    first = crypto.ecdsa_sign(key, data)
    assert crypto.ecdsa_sign(key, data) == first                 # deterministic
    assert crypto.ecdsa_sign(key, data + b".") != first          # and per message
    board_key = PrivateKey(key.private_numbers().private_value)
    assert BoardCrypto().ecdsa_sign(board_key, data) == first    # the dev board's bytes
    assert crypto.ecdsa_verify(public_xy(key.public_key()), data, first)
