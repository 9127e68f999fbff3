"""HAN node adapters: a device's GBCS port behind the GB-HRGP tunnel.

A node is anything with `receive_tunnel(data, now) -> list[bytes]`: TransferData payloads
from the hub in, TransferData payloads for the hub out (docs/GBCS_INTERFACES.md 6).
"""

from __future__ import annotations

from firmware.han import tunnel as T


class EsmeNode:
    """An ESME on the HAN: a PUT from the hub carries a GBCS command for
    `esme_gbcs.receive_gbcs`; each response or alert goes back in its own PUT (segmented
    at the maximum transfer size). Anything else (a GET: the ESME is mains powered and
    never polled; a frame that does not reassemble) is dropped and counted."""

    def __init__(self, esme_gbcs, max_transfer: int = T.MAX_TRANSFER):
        self.esme_gbcs = esme_gbcs
        self.max_transfer = max_transfer
        self.reassembler = T.Reassembler(max_transfer=max_transfer)
        self.dropped = 0

    def receive_tunnel(self, data: bytes, now: int) -> list[bytes]:
        try:
            got = self.reassembler.feed(data, now)
        except T.TunnelError:
            self.dropped += 1
            return []
        if got is None:
            return []
        kind, _, payload = got
        if kind != T.PUT:
            self.dropped += 1
            return []
        frames = []
        for message in self.esme_gbcs.receive_gbcs(payload, now):
            frames.extend(T.segments(T.put(message), self.max_transfer))
        return frames
