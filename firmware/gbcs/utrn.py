"""Unique Transaction Reference Numbers: prepayment top-up codes (GBCS v4 clause 14).

A UTRN is 20 decimal digits: decimal(UTRN_OFFSET + PTUT) followed by a Verhoeff check
digit (GBCS 14.8's variant of Verhoeff). The 64-bit PTUT (Prepayment Top-Up Token) is

    PTUT_high = 0000000b | counter bits 41..32 (10) | value class (2) | value (13)
    PTUT_low  = the low 4 bytes of the AES-GCM tag (no plaintext), keyed by the KDF
                (mode 1) over ECDH(supplier prepayment KA, device KA), IV = originator
                EUI || 00000000, AAD = 11 0000000000 || originator || target || 01 ||
                counter (8) || PTUT_high (4)

Checked against the two RTDS UTRNs in shared/design/DOMAIN.md. The originator counter of
a top-up has its low 32 bits zero, so only bits 41..32 travel in the token; the device
rebuilds the full counter from its anti-replay record.
"""

import struct

from firmware.gbcs.security import derive_key

UTRN_OFFSET = 7394156990786306048
UTRN_DIGITS = 20
KDF_MODE_UTRN = 1
CLASS_PENCE = 0
CLASS_POUNDS = 1
MAX_VALUE = 0x1FFF
COUNTER_BITS = 10
AAD_PREFIX = b"\x11\x00\x00\x00\x00\x00"

# GBCS 14.8 check digit: Verhoeff's dihedral-group scheme with GBCS's own tables.
# Table 14.8b (multiplication in D5):
_MULTIPLY = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6), (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4), (9, 8, 7, 6, 5, 4, 3, 2, 1, 0))
# Table 14.8a (permutations; row 4 differs from the textbook Verhoeff table):
_PERMUTE = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2), (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8))
# Table 14.8c (the final mapping; not the textbook inverse):
_FINAL = (1, 2, 6, 7, 5, 8, 3, 0, 9, 4)
_FIRST_PERMUTATION = 4


class UtrnError(Exception):
    """A UTRN refused; `reason` names the check that failed."""

    def __init__(self, reason):
        super().__init__("utrn: " + reason)
        self.reason = reason


def check_digit(digits):
    """GBCS 14.8: run left to right through the digits, the permutation row starting at 4
    and stepping mod 8, then map the accumulated value through table 14.8c."""
    accumulated = 0
    row = _FIRST_PERMUTATION
    for ch in digits:
        accumulated = _MULTIPLY[accumulated][_PERMUTE[row][ord(ch) - 48]]
        row = (row + 1) % 8
    return chr(48 + _FINAL[accumulated])


def ptut_high(counter, value_class, value):
    if counter & 0xFFFFFFFF:
        raise ValueError("a top-up counter has its low 32 bits zero")
    if value_class not in (CLASS_PENCE, CLASS_POUNDS) or not 0 <= value <= MAX_VALUE:
        raise ValueError("value class or value out of range")
    return (((counter >> 32) & 0x3FF) << 15) | (value_class << 13) | value


def utrn_key(crypto, shared_secret, originator, counter, target):
    return derive_key(crypto, shared_secret, originator, KDF_MODE_UTRN, counter, target)


def ptut_low(crypto, key, originator, target, counter, high):
    aad = (AAD_PREFIX + originator + target + b"\x01"
           + struct.pack(">III", counter >> 32, counter & 0xFFFFFFFF, high))
    return struct.unpack(">I", crypto.gmac(key, originator + b"\x00\x00\x00\x00", aad)[-4:])[0]


def mint(crypto, shared_secret, originator, target, counter, value_class, value):
    """The supplier side: a UTRN string for this counter and value."""
    high = ptut_high(counter, value_class, value)
    key = utrn_key(crypto, shared_secret, originator, counter, target)
    digits = str(UTRN_OFFSET + ((high << 32) | ptut_low(crypto, key, originator, target, counter, high)))
    if len(digits) != UTRN_DIGITS - 1:
        raise ValueError("PTUT out of range for a 20-digit UTRN")
    return digits + check_digit(digits)


def parse(utrn):
    """(counter bits 41..32, value class, value, ptut_low) from a UTRN string."""
    if isinstance(utrn, (bytes, bytearray)):
        utrn = utrn.decode()
    if len(utrn) != UTRN_DIGITS or not all("0" <= ch <= "9" for ch in utrn):
        raise UtrnError("a UTRN is 20 decimal digits")
    if check_digit(utrn[:-1]) != utrn[-1]:
        raise UtrnError("check digit does not match")
    ptut = int(utrn[:-1]) - UTRN_OFFSET
    if ptut < 0 or ptut >> 64:
        raise UtrnError("PTUT out of range")
    high = ptut >> 32
    if high >> 25:
        raise UtrnError("reserved PTUT bits are set")
    return (high >> 15) & 0x3FF, (high >> 13) & 3, high & MAX_VALUE, ptut & 0xFFFFFFFF


class UtrnAntiReplay:
    """The device's record of accepted UTRN counters (its own, apart from the GBCS
    originator counters). A UTRN is accepted once, and only if its counter is newer than
    the oldest one remembered; the record size is configurable (GBCS leaves the depth to
    the device; unconfirmed default 20)."""

    def __init__(self, size=20, accepted=None):
        self.size = size
        self.accepted = list(accepted or [])

    def full_counter(self, low_bits):
        """Rebuild counter bits 63..32 from the 10 bits in the token: the value nearest
        above the newest accepted counter that ends in those bits."""
        newest = max(self.accepted) if self.accepted else 0
        base = newest & ~0x3FF
        candidate = base | low_bits
        if candidate <= newest - 512:
            candidate += 0x400
        return candidate << 32

    def check(self, counter):
        high = counter >> 32
        if high in self.accepted:
            raise UtrnError("UTRN counter already used")
        if len(self.accepted) >= self.size and high < min(self.accepted):
            raise UtrnError("UTRN counter older than the anti-replay record")

    def accept(self, counter):
        self.accepted.append(counter >> 32)
        if len(self.accepted) > self.size:
            self.accepted.remove(min(self.accepted))

    def state(self):
        return {"size": self.size, "accepted": list(self.accepted)}


def verify(crypto, shared_secret, originator, target, utrn, record):
    """Device side: (counter, value_class, value) of a valid, unused UTRN, recorded as
    used; raises UtrnError and leaves the record unchanged otherwise."""
    low_bits, value_class, value, low = parse(utrn)
    counter = record.full_counter(low_bits)
    record.check(counter)
    high = ptut_high(counter, value_class, value)
    key = utrn_key(crypto, shared_secret, originator, counter, target)
    if ptut_low(crypto, key, originator, target, counter, high) != low:
        raise UtrnError("authentication tag does not verify for this target and supplier")
    record.accept(counter)
    return counter, value_class, value
