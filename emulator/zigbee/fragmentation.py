"""APS fragmentation on the EZSP host side: a message longer than one APS frame goes out
as blocks, the way EmberZNet's host fragmentation library (`fragmentation.c`) sends it.

bellows reassembles what it receives (`bellows/ezsp/fragmentation.py`: blocks arrive
through `incomingMessageHandler` with `APS_OPTION_FRAGMENT`, the block count and number
in `groupId`, and it acks each with `sendReply`) but sends every packet as one
`sendUnicast`, which an NCP refuses past its maximum APS payload. `ApsFragmentation`
is the sending half, mixed into a bellows `ControllerApplication`:

- the block size is the NCP's `maximumPayloadLength` less the extended header (2 octets,
  ZigBee R22 2.2.5.1.8) and less APS security (auxiliary header 5 + MIC 4) when the frame
  asks for APS encryption;
- block *i* of *n* is `sendUnicast` with `APS_OPTION_FRAGMENT | APS_OPTION_RETRY` and
  `groupId = n << 8 | i`; the first gets a new APS counter from the NCP, the later ones
  carry it in `apsFrame.sequence` (one counter per message, R22 2.2.8.4.5);
- window size 1: the next block goes once `messageSentHandler` reported the last one
  acked by the receiver; a block the NCP could not deliver (after its APS retries)
  fails the whole message with `DeliveryError`, and the receiver drops its partial
  message at its reassembly timeout.

Receiving on EZSP v14 and later: bellows 1.2.1 (`EZSPProtocol.__call__`) reads a
fragment's sender and payload at the argument positions of the v4-v13
`incomingMessageHandler` (`result[4]`, `result[7]`), which from v14 on are the binding
index and the RSSI; it would ack node 0x00FF and join RSSI values. `IncomingBlocks`
takes those frames before bellows' protocol sees them and does what bellows means to
(its own `FragmentManager`, the same `sendReply` ack), by the v14 field names; the
reassembled message then goes to the application as one `incomingMessageHandler`.
Below v14 bellows' own path runs unchanged.

    class HubApplication(ApsFragmentation, bellows.zigbee.application.ControllerApplication):
        ...
    await app.send_packet(packet)          # any length up to MAX_BLOCKS blocks
"""

from __future__ import annotations

import asyncio
import contextlib

import logging

import bellows.types as bt
import zigpy.exceptions
import zigpy.types as t
from bellows.ezsp.fragmentation import FragmentManager
from bellows.zigbee.application import MESSAGE_SEND_TIMEOUT_MAINS

LOGGER = logging.getLogger(__name__)

EXTENDED_HEADER = 2        # extended frame control + block number (R22 2.2.5.1.8)
APS_SECURITY = 5 + 4       # APS auxiliary header (key id, frame counter) + 4-octet MIC
MAX_BLOCKS = 255           # the first block's block-number field carries the count


def blocks(data: bytes, size: int) -> list[bytes]:
    """`data` cut into blocks of `size` octets (the last one shorter)."""
    if size < 1:
        raise ValueError("APS block size must be positive")
    out = [data[i:i + size] for i in range(0, len(data), size)]
    if len(out) > MAX_BLOCKS:
        raise ValueError("%d octets need %d APS blocks of %d; at most %d"
                         % (len(data), len(out), size, MAX_BLOCKS))
    return out


class ApsFragmentation:
    """`send_packet` that fragments a unicast longer than the NCP takes in one frame."""

    _max_aps_payload: int | None = None

    async def connect(self) -> None:
        await super().connect()
        IncomingBlocks(self._ezsp)

    async def max_aps_payload(self) -> int:
        """The NCP's maximum APS payload (EZSP maximumPayloadLength), asked once."""
        if self._max_aps_payload is None:
            (length,) = await self._ezsp.maximumPayloadLength()
            self._max_aps_payload = int(length)
        return self._max_aps_payload

    async def send_packet(self, packet: t.ZigbeePacket) -> None:
        data = packet.data.serialize()
        if packet.dst.addr_mode != t.AddrMode.NWK or \
                len(data) <= await self.max_aps_payload():
            return await super().send_packet(packet)
        encrypted = t.TransmitOptions.APS_Encryption in packet.tx_options
        size = await self.max_aps_payload() - EXTENDED_HEADER - (
            APS_SECURITY if encrypted else 0)
        await self._send_blocks(packet, blocks(data, size), encrypted)

    async def _send_blocks(self, packet, pieces, encrypted):
        options = (bt.EmberApsOption.APS_OPTION_FRAGMENT | bt.EmberApsOption.APS_OPTION_RETRY
                   | bt.EmberApsOption.APS_OPTION_ENABLE_ROUTE_DISCOVERY)
        if encrypted:
            options |= bt.EmberApsOption.APS_OPTION_ENCRYPTION
        counter = 0
        async with self._limit_concurrency(priority=packet.priority):
            for number, piece in enumerate(pieces):
                frame = bt.EmberApsFrame(
                    profileId=packet.profile_id, clusterId=packet.cluster_id,
                    sourceEndpoint=packet.src_ep, destinationEndpoint=packet.dst_ep or 0,
                    options=options, groupId=len(pieces) << 8 | number, sequence=counter)
                sequence = await self._send_block(packet.dst.address, frame, piece)
                if number == 0:
                    counter = sequence

    async def _send_block(self, nwk, frame, piece) -> int:
        """One block: sendUnicast, then its messageSentHandler; the APS counter used."""
        tag = self.get_sequence()
        pending = (nwk, tag)
        if pending in self._pending_requests:
            raise zigpy.exceptions.DeliveryError("message tag %r already pending" % (tag,))
        future = self._pending_requests[pending] = asyncio.get_running_loop().create_future()
        try:
            async with self._req_lock:
                status, sequence = await self._ezsp.send_unicast(
                    nwk=nwk, aps_frame=frame, message_tag=tag, data=piece)
            if status != bt.sl_Status.OK:
                raise zigpy.exceptions.DeliveryError(
                    "APS block %d refused by the NCP: %r" % (frame.groupId & 0xFF, status),
                    status)
            async with asyncio.timeout(MESSAGE_SEND_TIMEOUT_MAINS):
                sent, _ = await future
            if bt.sl_Status.from_ember_status(sent) != bt.sl_Status.OK:
                raise zigpy.exceptions.DeliveryError(
                    "APS block %d of %d not delivered: %r"
                    % (frame.groupId & 0xFF, frame.groupId >> 8, sent), sent)
            return int(sequence)
        finally:
            with contextlib.suppress(KeyError):
                del self._pending_requests[pending]


class IncomingBlocks:
    """Reassembly of received blocks on EZSP v14+ hosts (see the module docstring)."""

    FIRST_VERSION = 14

    def __init__(self, ezsp):
        self.ezsp = ezsp
        self.blocks = FragmentManager()
        self._acks: set = set()
        self._bellows_frame_received = ezsp.frame_received
        ezsp.frame_received = self.frame_received

    def frame_received(self, data: bytes) -> None:
        fields = self._fragment_fields(data)
        if fields is None:
            self._bellows_frame_received(data)
            return
        frame = fields["aps_frame"]
        complete, whole, count, index = self.blocks.handle_incoming_fragment(
            sender_nwk=fields["nwk"], aps_sequence=frame.sequence,
            profile_id=frame.profileId, cluster_id=frame.clusterId,
            fragment_count=frame.groupId >> 8, fragment_index=frame.groupId & 0xFF,
            payload=bytes(fields["message"]))
        task = asyncio.get_running_loop().create_task(self._ack(fields["nwk"], frame, index))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)
        if complete:
            fields["message"] = t.LVBytes(whole)
            self.ezsp.handle_callback("incomingMessageHandler", list(fields.values()))

    def _fragment_fields(self, data):
        """The v14+ incomingMessageHandler fields of a fragment's frame, else None."""
        protocol = self.ezsp._protocol
        if protocol is None or not data or \
                (self.ezsp.ezsp_version or 0) < self.FIRST_VERSION:
            return None
        try:
            _seq, frame_id, body = protocol._ezsp_frame_rx(data)
            name, _tx, schema = protocol.COMMANDS_BY_ID[frame_id]
            if name != "incomingMessageHandler" or not isinstance(schema, dict):
                return None
            fields, _rest = bt.deserialize_dict(body, schema)
        except Exception:          # bellows' own path logs what it cannot parse
            return None
        if not fields["aps_frame"].options & bt.EmberApsOption.APS_OPTION_FRAGMENT:
            return None
        return fields

    async def _ack(self, sender, frame, index):
        """The ack bellows' `_send_fragment_ack` sends: groupId 0xFF00 | block."""
        ack = bt.EmberApsFrame(
            profileId=frame.profileId, clusterId=frame.clusterId,
            sourceEndpoint=frame.destinationEndpoint,
            destinationEndpoint=frame.sourceEndpoint, options=frame.options,
            groupId=0xFF00 | (index & 0xFF), sequence=frame.sequence)
        try:
            await self.ezsp.sendReply(sender, ack, b"")
        except Exception as e:     # the sender retries the block; nothing to undo here
            LOGGER.debug("fragment ack to 0x%04X not sent: %r", sender, e)
