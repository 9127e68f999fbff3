"""HAN frames as a pcap file Wireshark and tshark dissect down to the ZCL SE clusters.

Link type **195, LINKTYPE_IEEE802_15_4_WITHFCS**: each packet is the PSDU exactly as it
went on the air, MAC header to the 2-octet FCS, so tshark checks the FCS too. The
virtual NCPs send NWK and APS unsecured (see ``emulator/ncp/frames.py``), so no keys are
needed: Wireshark's ZigBee NWK heuristic takes the MAC payload, then APS (reassembling
APS blocks of a fragmented message), then ZCL by profile (0x0109 Smart Energy, with the
Tunneling cluster 0x0704 carrying GBCS).

File format: the classic libpcap layout (https://wiki.wireshark.org/Development/LibpcapFileFormat):
a 24-octet global header (magic a1b2c3d4, version 2.4, snaplen, link type) and per
packet a 16-octet header (seconds, microseconds, captured length, original length).

    with PcapWriter.open("han.pcap", epoch=1_700_000_000.0) as pcap:
        medium = VirtualMedium(seed=1, sink=pcap)     # every frame as it goes on air
    write_pcap("han.pcap", medium.records)           # or all at once afterwards
"""

from __future__ import annotations

import struct

LINKTYPE_IEEE802_15_4_WITHFCS = 195
PCAP_MAGIC = 0xA1B2C3D4
SNAPLEN = 65535


class PcapWriter:
    """Writes packets to a binary stream. Timestamps: ``epoch + (t - first t)``, or ``t``
    as given when ``epoch`` is None (the medium's clock, e.g. monotonic seconds)."""

    def __init__(self, stream, epoch: float | None = None,
                 link_type: int = LINKTYPE_IEEE802_15_4_WITHFCS):
        self.stream = stream
        self.epoch = epoch
        self._t0 = None
        self.count = 0
        self._owns = False
        stream.write(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, link_type))

    @classmethod
    def open(cls, path, epoch: float | None = None) -> "PcapWriter":
        writer = cls(open(path, "wb"), epoch)
        writer._owns = True
        return writer

    def packet(self, when: float, data: bytes) -> None:
        if self.epoch is not None:
            if self._t0 is None:
                self._t0 = when
            when = self.epoch + (when - self._t0)
        micros = int(round(when * 1_000_000))
        seconds, micros = divmod(max(micros, 0), 1_000_000)
        self.stream.write(struct.pack("<IIII", seconds, micros, len(data), len(data)))
        self.stream.write(data)
        self.count += 1

    def frame(self, record) -> None:
        """A medium FrameRecord, as its sender put it on the air."""
        self.packet(record.time, record.psdu)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.flush()
        if self._owns:
            self.stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_pcap(path, records, epoch: float | None = 0.0) -> int:
    """Write medium records (time order) to ``path``; return the packet count."""
    with PcapWriter.open(path, epoch) as writer:
        for record in sorted(records, key=lambda r: r.time):
            writer.frame(record)
        return writer.count


# -- the in-process virtual HAN (`emulator.han.virtual`) as 802.15.4 ---------------------
#
# `smets-emu demo` runs its HAN in process: `VirtualHan` logs each GB-HRGP TransferData
# payload (source, destination EUI), not radio frames. `tunnel_packets` puts each one on
# the air as a GB device would send it: MAC data frame (IEEE 802.15.4-2006 7.2.2.2),
# unsecured NWK data (ZigBee 05-3474 3.3.1), APS data on the Smart Energy profile with
# the Tunneling cluster (2.2.5.1), ZCL cluster-specific TransferData (ZSE 1.4 10.6.3.3 /
# 10.6.4.2). GB devices advertise a 1500-octet transfer size and rely on APS
# fragmentation (05-3474 2.2.5.1.8, 2.2.8.4.5), so a command longer than one PSDU is
# sent as APS blocks: extended header, first block carrying the block count. Short
# addresses are derived from the EUI (the hub is the coordinator, 0x0000); MAC and APS
# acknowledgements are not synthesised: the in-process HAN has none.

SE_PROFILE = 0x0109
TUNNELING_CLUSTER = 0x0704
SE_ENDPOINT = 1
TRANSFER_DATA_DOWN = 0x01         # ZSE 1.4 10.6.4.2: server (hub) -> client
TRANSFER_DATA_UP = 0x02           # ZSE 1.4 10.6.3.3: client (meter) -> server
_BLOCK = 80                        # APS payload per block: fits 127 octets with all headers


def short_address(eui: bytes, hub_eui: bytes) -> int:
    if eui == hub_eui:
        return 0x0000
    value = (eui[-1] << 8 | eui[-2]) & 0xFFF7 or 0x0001
    return value if value < 0xFFF8 else value & 0x7FFF


def tunnel_packets(records, hub_eui: bytes, pan_id: int = 0x1A62, tunnel_id: int = 1):
    """(time, PSDU) for each logged TransferData, in the order they went on the air."""
    from emulator.ncp import frames as F

    seq = {"mac": 0, "nwk": 0, "aps": 0, "zcl": 0}

    def bump(name):
        seq[name] = (seq[name] + 1) & 0xFF
        return seq[name]

    for record in sorted(records, key=lambda r: r.sent_at):
        downlink = record.source == hub_eui
        # direction bit 0x08: server (the hub) to client; disable default response 0x10
        zcl = bytes((0x01 | 0x10 | (0x08 if downlink else 0x00), bump("zcl"),
                     TRANSFER_DATA_DOWN if downlink else TRANSFER_DATA_UP))
        zcl += struct.pack("<H", tunnel_id) + bytes(record.data)
        src = short_address(record.source, hub_eui)
        dst = short_address(record.destination, hub_eui)
        counter = bump("aps")
        for aps in _aps_blocks(counter, zcl):
            nwk = F.nwk_data(dst, src, bump("nwk"), aps)
            yield record.sent_at, F.mac_data(bump("mac"), pan_id, dst, src, nwk, True)


def _aps_blocks(counter: int, asdu: bytes):
    from emulator.ncp import frames as F

    header = (SE_ENDPOINT, TUNNELING_CLUSTER, SE_PROFILE, SE_ENDPOINT, counter)
    if len(asdu) <= _BLOCK + 2:
        yield F.aps_data(*header, asdu, ack_request=True)
        return
    blocks = [asdu[i:i + _BLOCK] for i in range(0, len(asdu), _BLOCK)]
    for number, block in enumerate(blocks):
        yield F.aps_data(*header, block, ack_request=True,
                         fragment=F.Fragment(number, len(blocks)))


def write_tunnel_pcap(path, records, hub_eui: bytes, epoch: float | None = 0.0) -> int:
    """The virtual HAN's frame log as a pcap; returns the packet count."""
    with PcapWriter.open(path, epoch) as writer:
        for when, psdu in tunnel_packets(records, hub_eui):
            writer.packet(when, psdu)
        return writer.count
