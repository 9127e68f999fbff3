"""The GB-HRGP tunnel over ZigBee Tunneling TransferData commands.

`CommsHub` and the HAN node adapters speak GB-HRGP frames cut at the GB maximum transfer
size (1500, `firmware.han.tunnel`), each device reassembling at that size. On ZigBee each
end of a tunnel advertises its own MaximumIncomingTransferSize (RequestTunnel and its
response, ZSE 1.4 D.6.2.4.1 / D.6.2.5.1), and a TransferData command must not exceed the
receiver's. A `TunnelStream` sits between the two: it joins the frames one side hands it
(whatever size they were cut at) and cuts them again for the other side. Since the
tunnel is a byte stream whose messages carry their own lengths (ZSE 1.4 D.6.4.x), the
cut points carry no meaning, so re-cutting is lossless; a lost piece costs one message,
as it does in `firmware.han.tunnel.Reassembler`.
"""

from __future__ import annotations

from firmware.han import tunnel as T


class TunnelStream:
    """One direction of one tunnel: `feed(piece, now)` -> the pieces to send on, cut at
    `out_size`, once a whole GB-HRGP frame has arrived (pieces cut at `in_size`)."""

    def __init__(self, in_size: int = T.MAX_TRANSFER, out_size: int = T.MAX_TRANSFER):
        self.reassembler = T.Reassembler(max_transfer=in_size)
        self.out_size = out_size
        self.dropped = 0

    def feed(self, piece: bytes, now: int) -> list[bytes]:
        try:
            got = self.reassembler.feed(piece, now)
        except T.TunnelError:
            self.dropped += 1
            return []
        if got is None:
            return []
        return T.segments(frame_of(*got), self.out_size)


def frame_of(kind: int, remaining, payload: bytes) -> bytes:
    """The GB-HRGP frame `firmware.han.tunnel.decode` read as (kind, remaining, payload)."""
    if kind == T.GET:
        return T.get()
    if kind == T.GET_RESPONSE:
        return T.get_response(remaining, payload)
    return T.put(payload)
