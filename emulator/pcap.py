"""HAN frames as a pcap file Wireshark and tshark dissect down to the ZCL SE clusters.

Link type **195, LINKTYPE_IEEE802_15_4_WITHFCS**: each packet is the PSDU exactly as it
went on the air, MAC header to the 2-octet FCS, so tshark checks the FCS too. The
virtual NCPs send NWK and APS unsecured (see ``emulator/ncp/frames.py``), so no keys are
needed: Wireshark's ZigBee NWK heuristic takes the MAC payload, then APS, then ZCL by
profile (0x0109 Smart Energy, with the Tunneling cluster 0x0704 carrying GBCS).

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
