"""GBCS clause 18.4 worked example (ECS04b Reset Meter Balance), rebuilt from its inputs.

Inputs from tests/vectors/gbcs/README.md (the example as reproduced in the public-domain
HenryGiraldo/gbcs). The example was signed with a random nonce (ours are RFC 6979), so its
own signature is an input to the MAC rebuild, and a fresh signature is checked by
verification.
"""

from cryptography.hazmat.primitives.asymmetric import ec

from emulator.crypto import HostCrypto, public_xy
from firmware.gbcs import envelope, security

MESSAGE = bytes.fromhex(
    "DD00000000000081A91100000000DF0901000000000000000108123456789ABCDEF008FFFFFFFFFFFFFFFE"
    "000200B335D92000000100030300700000130A00FF020300700000130A01FF020300700000130A02FF0203"
    "0500000000050000000005000000004059045AB0F554622B0360340B9D87B5A23ED5723B41DE3F206E58CD"
    "D10F915B9FE2E12E2DA3632478A8DF678E418895869AC1E55318CCE04D120D2D6B44DC167B5D832D15B57A"
    "56D620F198B3")
SUPPLIER = bytes.fromhex("123456789ABCDEF0")
ESME = bytes.fromhex("FFFFFFFFFFFFFFFE")
SUPPLIER_DS_PUBLIC = bytes.fromhex(
    "76628E1C84EF7935548AE5D62C7BB3AD28964CF794F0387A697EEC19CDD98F46"
    "0A4D5E19087EF7216ED89C29831A6EE838C8DE88EF34F11D3F41F36D80B2A5D5")
SUPPLIER_DS_PRIVATE = 0x3A6B2EAA0D9F25A9E455983FEB5BB947528121911BF3B76BE5661C89DBF24B26
ACB_KA_PRIVATE = 0xE4A6CFB431471CFCAE491FD566D19C87082CF9FA7722D7FA24B2B3F5669DBEFB
DEVICE_KA_PUBLIC = bytes.fromhex(
    "2DB45A3F21889438B42C8F464C75292BACF5FDDB5DA0B492501B299CBFE92D8F"
    "DB90FC8FF4026129838B1BCAD1402CAE47FE7D8084E409A41AFCE16D63579C5F")
DERIVED_KEY = bytes.fromhex("859b846a24e1ea70a168409a1180676b")

CRYPTO = HostCrypto()
ACB_KA = ec.derive_private_key(ACB_KA_PRIVATE, ec.SECP256R1())
SUPPLIER_DS = ec.derive_private_key(SUPPLIER_DS_PRIVATE, ec.SECP256R1())
PAYLOAD = envelope.parse(MESSAGE).payload
EXAMPLE_SIGNATURE = envelope.parse(MESSAGE).signature


def _command():
    return envelope.GbcsMessage(envelope.CRA_COMMAND, 1, SUPPLIER, ESME, 0x00B3, PAYLOAD)


def test_the_supplier_key_pair_matches():
    assert public_xy(SUPPLIER_DS.public_key()) == SUPPLIER_DS_PUBLIC


def test_kdf_derives_the_published_key():
    message = _command()
    secret = CRYPTO.ecdh(ACB_KA, DEVICE_KA_PUBLIC)
    assert security.mac_key(CRYPTO, secret, message) == DERIVED_KEY


def test_rebuilt_byte_for_byte_from_its_inputs():
    message = _command()
    message.signature = EXAMPLE_SIGNATURE
    security.protect_mac(CRYPTO, CRYPTO.ecdh(ACB_KA, DEVICE_KA_PUBLIC), message)
    assert message.encode() == MESSAGE


def test_the_example_signature_verifies_and_a_fresh_one_too():
    assert security.verify_signature(CRYPTO, SUPPLIER_DS_PUBLIC, envelope.parse(MESSAGE))
    message = security.sign(CRYPTO, SUPPLIER_DS, _command())
    assert message.signature != EXAMPLE_SIGNATURE
    assert security.verify_signature(CRYPTO, SUPPLIER_DS_PUBLIC, message)
    security.protect_mac(CRYPTO, CRYPTO.ecdh(ACB_KA, DEVICE_KA_PUBLIC), message)
    reparsed = envelope.parse(message.encode())
    assert security.verify_mac(CRYPTO, CRYPTO.ecdh(ACB_KA, DEVICE_KA_PUBLIC), reparsed)
