"""IEEE 802.15.4 MAC, ZigBee NWK and APS frames as the virtual NCPs put them on the air.

Layouts:
- MAC (IEEE 802.15.4-2006 §7.2): frame control (16 bits LE), sequence, addressing,
  payload, FCS = CRC-16/ITU-T (KERMIT: poly 0x1021 reflected, init 0) LE (§7.2.1.9).
  Data frames use short addresses with PAN ID compression: FCF 0x8841 (+0x0020 when an
  acknowledgement is requested). Acks are FCF 0x0002 + sequence.
- NWK (ZigBee 05-3474 R22 §3.3.1): frame control 0x0048 for data (protocol version 2,
  discover route: enable) + dest, source, radius, sequence; security off.
- APS (05-3474 §2.2.5): frame control (data 0b00, ack 0b10; delivery mode unicast 0b00,
  broadcast 0b10; ack request 0x40; extended header 0x80), dest endpoint, cluster,
  profile, source endpoint, APS counter, then for a fragmented message the extended
  header (§2.2.5.1.8): extended frame control (fragmentation 01 first block, 10 a later
  one), block number (the first block carries the block count instead, §2.2.8.4.5.1),
  and in an ack the ack bitfield (bit i: block number + i received).

Frames go out unencrypted (NWK and APS security off): the virtual medium has no
eavesdropper, and a capture of them dissects down to ZCL without keys.
"""

from __future__ import annotations

import struct

BROADCAST_PAN = 0xFFFF
BROADCAST_ADDR = 0xFFFF

MAC_DATA = 1
MAC_ACK = 2
MAC_COMMAND = 3
MAC_BEACON = 0

MAC_ASSOCIATION_REQUEST = 0x01
MAC_ASSOCIATION_RESPONSE = 0x02
MAC_BEACON_REQUEST = 0x07

APS_DATA = 0
APS_ACK = 2
APS_UNICAST = 0
APS_BROADCAST = 2
APS_ACK_REQUEST = 0x40
APS_EXTENDED_HEADER = 0x80
FRAGMENT_FIRST = 0x01
FRAGMENT_LATER = 0x02


def _kermit_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_KERMIT = _kermit_table()


def fcs(data: bytes) -> int:
    """IEEE 802.15.4 FCS (§7.2.1.9): ITU-T CRC-16, reflected, init 0."""
    crc = 0
    for b in data:
        crc = (crc >> 8) ^ _KERMIT[(crc ^ b) & 0xFF]
    return crc


def with_fcs(mpdu: bytes) -> bytes:
    return mpdu + struct.pack("<H", fcs(mpdu))


def fcs_ok(psdu: bytes) -> bool:
    return len(psdu) >= 5 and fcs(psdu[:-2]) == struct.unpack_from("<H", psdu, len(psdu) - 2)[0]


class MacFrame:
    """A decoded MAC frame (short addressing, PAN ID compressed, as we send them)."""

    __slots__ = ("kind", "seq", "ack_request", "pan_id", "dst", "src", "src_eui64",
                 "payload")

    def __init__(self, kind, seq, ack_request=False, pan_id=None, dst=None, src=None,
                 src_eui64=None, payload=b""):
        self.kind = kind
        self.seq = seq
        self.ack_request = ack_request
        self.pan_id = pan_id
        self.dst = dst
        self.src = src
        self.src_eui64 = src_eui64
        self.payload = payload


def mac_data(seq: int, pan_id: int, dst: int, src: int, payload: bytes,
             ack_request: bool) -> bytes:
    fcf = 0x8841 | (0x0020 if ack_request else 0)
    return with_fcs(struct.pack("<HBHHH", fcf, seq, pan_id, dst, src) + payload)


def mac_ack(seq: int) -> bytes:
    return with_fcs(struct.pack("<HB", 0x0002, seq))


def mac_beacon_request(seq: int) -> bytes:
    # dst short 0xFFFF on PAN 0xFFFF, no source (§7.3.7): FCF 0x0803
    return with_fcs(struct.pack("<HBHHB", 0x0803, seq, BROADCAST_PAN, BROADCAST_ADDR,
                                MAC_BEACON_REQUEST))


def mac_beacon(seq: int, pan_id: int, src: int, extended_pan_id: bytes,
               permit_join: bool) -> bytes:
    """Beacon (§7.2.2.1) with the ZigBee beacon payload (05-3474 §3.6.7)."""
    superframe = 0xCFFF if permit_join else 0x4FFF       # BO=SO=15, PAN coordinator
    superframe |= 0x8000 if permit_join else 0
    zigbee = struct.pack("<BBB", 0x00, 0x22, 0x84) + extended_pan_id + b"\xff\xff\xff" + b"\x00"
    body = struct.pack("<HBB", superframe, 0x00, 0x00) + zigbee
    return with_fcs(struct.pack("<HBHH", 0x8000, seq, pan_id, src) + body)


def mac_association_request(seq: int, pan_id: int, coordinator: int, eui64: bytes) -> bytes:
    # FCF: command, ack request, dst short, src long, no PAN compression: 0xC823
    capability = 0x8E       # FFD, mains powered, rx on when idle, allocate address
    return with_fcs(struct.pack("<HBHH", 0xC823, seq, pan_id, coordinator) +
                    struct.pack("<H", BROADCAST_PAN) + eui64 +
                    bytes((MAC_ASSOCIATION_REQUEST, capability)))


def mac_association_response(seq: int, pan_id: int, dst_eui64: bytes, src_eui64: bytes,
                             short_addr: int, status: int = 0) -> bytes:
    # FCF: command, ack request, PAN compression, dst long, src long: 0xCC63
    return with_fcs(struct.pack("<HBH", 0xCC63, seq, pan_id) + dst_eui64 + src_eui64 +
                    bytes((MAC_ASSOCIATION_RESPONSE,)) + struct.pack("<HB", short_addr, status))


def parse_mac(psdu: bytes) -> MacFrame:
    """Our own frames back (FCS already checked). Raises ValueError on other layouts."""
    fcf, seq = struct.unpack_from("<HB", psdu, 0)
    kind = fcf & 7
    body = psdu[:-2]
    ack_request = bool(fcf & 0x20)
    if kind == MAC_ACK:
        return MacFrame(MAC_ACK, seq)
    if fcf == 0x8841 | (0x20 if ack_request else 0) and kind == MAC_DATA:
        pan, dst, src = struct.unpack_from("<HHH", body, 3)
        return MacFrame(MAC_DATA, seq, ack_request, pan, dst, src, payload=bytes(body[9:]))
    if fcf == 0x0803:
        return MacFrame(MAC_COMMAND, seq, False, BROADCAST_PAN, BROADCAST_ADDR,
                        payload=bytes(body[7:]))
    if fcf == 0x8000:
        pan, src = struct.unpack_from("<HH", body, 3)
        return MacFrame(MAC_BEACON, seq, False, pan, None, src, payload=bytes(body[7:]))
    if fcf == 0xC823:
        pan, dst = struct.unpack_from("<HH", body, 3)
        return MacFrame(MAC_COMMAND, seq, True, pan, dst, None, bytes(body[9:17]),
                        bytes(body[17:]))
    if fcf == 0xCC63:
        (pan,) = struct.unpack_from("<H", body, 3)
        return MacFrame(MAC_COMMAND, seq, True, pan, bytes(body[5:13]), None,
                        bytes(body[13:21]), bytes(body[21:]))
    raise ValueError(f"MAC frame control 0x{fcf:04X} is not one the virtual NCP sends")


def nwk_data(dst: int, src: int, seq: int, payload: bytes, radius: int = 30) -> bytes:
    return struct.pack("<HHHBB", 0x0048, dst, src, radius, seq) + payload


def parse_nwk(data: bytes):
    """-> (dst, src, radius, seq, payload)"""
    fc, dst, src, radius, seq = struct.unpack_from("<HHHBB", data, 0)
    if fc & 0x0003 != 0 or fc & 0x0200:
        raise ValueError(f"NWK frame control 0x{fc:04X}: not an unsecured data frame")
    return dst, src, radius, seq, bytes(data[8:])


class Fragment:
    """One block's place in a fragmented APS message: `block` (0-based), `count` (known
    from the first block; None on a later one), `ack_bits` in an ack."""

    __slots__ = ("block", "count", "ack_bits")

    def __init__(self, block, count=None, ack_bits=0x01):
        self.block = block
        self.count = count
        self.ack_bits = ack_bits

    def data_header(self) -> bytes:
        if self.block == 0:
            return bytes((FRAGMENT_FIRST, self.count))
        return bytes((FRAGMENT_LATER, self.block))

    def ack_header(self) -> bytes:
        kind = FRAGMENT_FIRST if self.block == 0 else FRAGMENT_LATER
        return bytes((kind, self.block, self.ack_bits))


def aps_data(dst_ep: int, cluster: int, profile: int, src_ep: int, counter: int,
             payload: bytes, broadcast: bool = False, ack_request: bool = False,
             fragment: Fragment | None = None) -> bytes:
    fc = APS_DATA | (APS_BROADCAST << 2 if broadcast else 0) | (APS_ACK_REQUEST if ack_request else 0)
    extended = b""
    if fragment is not None:
        fc |= APS_EXTENDED_HEADER
        extended = fragment.data_header()
    return struct.pack("<BBHHBB", fc, dst_ep, cluster, profile, src_ep, counter) + extended + payload


def aps_ack(dst_ep: int, cluster: int, profile: int, src_ep: int, counter: int,
            fragment: Fragment | None = None) -> bytes:
    if fragment is None:
        return struct.pack("<BBHHBB", APS_ACK, dst_ep, cluster, profile, src_ep, counter)
    return struct.pack("<BBHHBB", APS_ACK | APS_EXTENDED_HEADER, dst_ep, cluster, profile,
                       src_ep, counter) + fragment.ack_header()


def parse_aps(data: bytes):
    """-> (frame_type, ack_request, dst_ep, cluster, profile, src_ep, counter, payload)"""
    return parse_aps_fragment(data)[:8]


def parse_aps_fragment(data: bytes):
    """`parse_aps` and the block's `Fragment` (None when the message is not fragmented)."""
    fc, dst_ep, cluster, profile, src_ep, counter = struct.unpack_from("<BBHHBB", data, 0)
    if fc & 0x20:
        raise ValueError("APS security is not used on the virtual medium")
    ftype, at, fragment = fc & 3, 8, None
    if fc & APS_EXTENDED_HEADER:
        extended = data[at]
        kind = extended & 3
        at += 1
        if kind not in (0, FRAGMENT_FIRST, FRAGMENT_LATER):
            raise ValueError(f"APS extended frame control 0x{extended:02X}: reserved fragmentation")
        if kind:
            number = data[at]
            at += 1
            if ftype == APS_ACK:
                fragment = Fragment(number, ack_bits=data[at])
                at += 1
            elif kind == FRAGMENT_FIRST:
                if number == 0:
                    raise ValueError("APS first block announces 0 blocks")
                fragment = Fragment(0, count=number)
            else:
                fragment = Fragment(number)
    return (ftype, bool(fc & APS_ACK_REQUEST), dst_ep, cluster, profile, src_ep, counter,
            bytes(data[at:]), fragment)
