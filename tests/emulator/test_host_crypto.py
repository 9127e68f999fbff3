"""HostCrypto's ECDH cache must never hand one key pair's secret to another."""

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
