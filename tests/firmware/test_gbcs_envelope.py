# GBCS envelope and key derivation on the device core (runs under MicroPython too).
# Vector: the GBCS clause 18.4 worked example (tests/vectors/gbcs/README.md); the ECDH
# secret below is ECDH(ACB KA private, device KA public) of that example.

import hashlib
from binascii import unhexlify

from firmware.gbcs import envelope, security

EXAMPLE = unhexlify(
    "DD00000000000081A91100000000DF0901000000000000000108123456789ABCDEF008FFFFFFFFFFFFFFFE"
    "000200B335D92000000100030300700000130A00FF020300700000130A01FF020300700000130A02FF0203"
    "0500000000050000000005000000004059045AB0F554622B0360340B9D87B5A23ED5723B41DE3F206E58CD"
    "D10F915B9FE2E12E2DA3632478A8DF678E418895869AC1E55318CCE04D120D2D6B44DC167B5D832D15B57A"
    "56D620F198B3")
SHARED_SECRET = unhexlify("9aacf2e6d51bd5ff8f37bf368019a691cb5b2fcb7b5f030a00063647b20e13fe")
DERIVED_KEY = unhexlify("859b846a24e1ea70a168409a1180676b")


class Sha256Only:
    def sha256(self, data):
        return hashlib.sha256(data).digest()


def _raises_gbcs_error(data):
    try:
        envelope.parse(data)
    except envelope.GbcsError as exc:
        return exc
    return None


def test_parse_worked_example_fields():
    message = envelope.parse(EXAMPLE)
    assert message.mac_protected
    assert message.cra_flag == envelope.CRA_COMMAND
    assert message.originator_counter == 1
    assert message.originator == unhexlify("123456789ABCDEF0")
    assert message.recipient == unhexlify("FFFFFFFFFFFFFFFE")
    assert message.date_time is None
    assert message.message_code == 0x00B3
    assert len(message.payload) == 0x35 and message.payload[0] == 0xD9
    assert len(message.signature) == 64
    assert message.mac == EXAMPLE[-12:]


def test_reencode_is_identical():
    assert envelope.parse(EXAMPLE).encode() == EXAMPLE


def test_signed_part_starts_after_general_signing_tag():
    message = envelope.parse(EXAMPLE)
    start = EXAMPLE.index(b"\xdf") + 1
    assert message.signed_part() == EXAMPLE[start:start + len(message.signed_part())]
    assert message.signed_part().endswith(message.payload)


def test_kdf_gives_the_published_key():
    message = envelope.parse(EXAMPLE)
    key = security.mac_key(Sha256Only(), SHARED_SECRET, message)
    assert key == DERIVED_KEY


def test_truncation_anywhere_is_a_gbcs_error_with_offset():
    for cut in range(1, len(EXAMPLE)):
        error = _raises_gbcs_error(EXAMPLE[:cut])
        assert error is not None, cut
        assert 0 <= error.offset <= cut


def test_bad_fields_are_named():
    bad_cra = bytearray(EXAMPLE)
    bad_cra[16] = 7                       # CRA flag after DF 09
    error = _raises_gbcs_error(bytes(bad_cra))
    assert error is not None and error.offset == 16 and "CRA" in error.reason
    bad_tag = bytearray(EXAMPLE)
    bad_tag[14] = 0xDE
    error = _raises_gbcs_error(bytes(bad_tag))
    assert error is not None and error.offset == 14
    assert _raises_gbcs_error(b"") is not None
    assert _raises_gbcs_error(b"\xdd\x00\x00\x00\x00\x00\x00\x84\xff\xff\xff\xff") is not None


def test_unsigned_command_without_mac_builds_and_parses():
    message = envelope.GbcsMessage(envelope.CRA_COMMAND, 0x0123456789, b"\x01" * 8, b"\x02" * 8,
                                   0x0027, b"\xd9\x20\x00\x00\x01", signature_field=False)
    encoded = message.encode()
    parsed = envelope.parse(encoded)
    assert not parsed.signature_field and parsed.signature is None
    assert parsed.originator_counter == 0x0123456789
    assert parsed.encode() == encoded


def test_a_changed_field_is_written_anew():
    # the signed part a parsed (or built) message keeps is used only while its fields
    # are unchanged
    message = envelope.parse(EXAMPLE)
    kept = message.signed_part()
    message.payload = message.payload[:-1] + b"\x06"
    assert message.signed_part() != kept and message.signed_part().endswith(b"\x06")
    message.payload = bytearray(message.payload)      # mutable: never kept
    before = message.signed_part()
    message.payload[-1] = 0x07
    assert message.signed_part() != before and message.signed_part().endswith(b"\x07")
    message.originator_counter = 2
    assert envelope.parse(message.encode()).originator_counter == 2


def test_a_long_form_length_is_read_and_written_short():
    # DF ... other-information length 02 written 81 02: the message reads the same and
    # its signed part (what the signature and MAC cover) is the shortest encoding
    plain = envelope.GbcsMessage(envelope.CRA_COMMAND, 5, b"\x01" * 8, b"\x02" * 8, 0x0027,
                                 b"\xd9\x20", signature_field=False).encode()
    at = plain.index(b"\x02\x00\x27")
    long_form = plain[:at] + b"\x81" + plain[at:]
    message = envelope.parse(long_form)
    assert message.message_code == 0x0027 and message.payload == b"\xd9\x20"
    assert message.encode() == plain
