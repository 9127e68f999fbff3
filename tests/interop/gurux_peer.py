"""A small meter reader built on Gurux (gurux-dlms + gurux-net): the independent DLMS peer.

It does what a head-end's first read of a new ESME does, with nothing of ours in the
loop: associate as the public client (SAP 16, lowest-level security, LN referencing),
read the association's object list, the clock, a register with its scaler and unit, and
a Profile Generic buffer by range (selector 1) and by entry (selector 2); then release
(RLRQ) and disconnect (HDLC DISC). Framing is the TCP wrapper (IEC 62056-47) or HDLC
(IEC 62056-46) carried over TCP.

Transport: `gurux_net.GXNet`, Gurux's own TCP media, driven the way Gurux's reference
reader (Gurux.DLMS.Client.Example.python/GXDLMSReader.py) drives it: send a request,
then `media.receive()` until `GXDLMSClient.getData()` says the reply is complete, and
`receiverReady()` for the next block while `GXReplyData.isMoreData()`. Every request and
every received chunk is kept in `exchanges` so a test can show what went over the wire.

    with GuruxPeer("127.0.0.1", port, framing="hdlc") as peer:
        reading = peer.read_meter()
"""

import datetime
import math

from gurux_common import ReceiveParameters
from gurux_dlms import GXByteBuffer, GXDLMSClient, GXDLMSException, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType
from gurux_dlms.objects import (
    GXDLMSClock,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
)
from gurux_net import GXNet
from gurux_net.enums import NetworkType

PUBLIC_CLIENT = 16
CLOCK = "0.0.1.0.0.255"
IMPORT_ENERGY = "1.0.1.8.0.255"
HALF_HOURLY_PROFILE = "1.0.99.1.0.255"

HDLC_FLAG = 0x7E
WRAPPER_HEADER_SIZE = 8


class PeerError(Exception):
    """The peer did not get a complete, valid answer."""


class MeterReading:
    """What one read session brought back (plain values, Gurux objects kept for detail)."""

    def __init__(self):
        self.objects = []          # [(class_id, logical name text, version)]
        self.clock = None          # datetime.datetime (tz-aware)
        self.register = None       # {"value", "scaler", "unit", "scaled"}
        self.rows_by_range = []    # [(datetime, value)]
        self.rows_by_entry = []    # [(datetime, value)]


class GuruxPeer:
    """Gurux's client talking to a DLMS server over TCP (wrapper or HDLC framing)."""

    def __init__(self, host, port, framing="wrapper", server_address=1,
                 server_physical=0x10, client_address=PUBLIC_CLIENT,
                 wait_ms=5000, max_pdu_size=0xFFFF, media=None):
        if framing == "wrapper":
            interface = InterfaceType.WRAPPER
            address = server_address
        elif framing == "hdlc":
            interface = InterfaceType.HDLC
            # IEC 62056-46 §6.4.2.3: upper HDLC address = logical device, lower = physical
            address = GXDLMSClient.getServerAddress(server_address, server_physical)
        else:
            raise ValueError("framing must be 'wrapper' or 'hdlc', not %r" % framing)
        self.framing = framing
        self.client = GXDLMSClient(True, client_address, address,
                                   Authentication.NONE, None, interface)
        self.client.maxReceivePDUSize = max_pdu_size
        # any object with GXNet's synchronous-media surface will do (see served.py)
        self.media = media if media is not None else GXNet(NetworkType.TCP, host, port)
        self.wait_ms = wait_ms
        self.exchanges = []        # [(direction "tx"/"rx", bytes)]

    # -- connection -------------------------------------------------------------------

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self):
        self.media.open()

    def close(self):
        self.media.close()

    def associate(self):
        """SNRM/UA (HDLC only), then AARQ/AARE. Raises GXDLMSException if rejected."""
        reply = GXReplyData()
        snrm = self.client.snrmRequest()
        if snrm:
            self._exchange(snrm, reply)
            self.client.parseUAResponse(reply.data)
            reply.clear()
        self._read_blocks(self.client.aarqRequest(), reply)
        self.client.parseAareResponse(reply.data)

    def release(self):
        """RLRQ/RLRE, then DISC/UA on HDLC (the wrapper has no link to close)."""
        reply = GXReplyData()
        self._read_blocks(self.client.releaseRequest(), reply)
        disc = self.client.disconnectRequest()
        if disc:
            reply.clear()
            self._exchange(disc, reply)

    # -- reads --------------------------------------------------------------------------

    def read(self, obj, attribute):
        """GET one attribute (block transfer followed) and store it in `obj`."""
        reply = GXReplyData()
        self._read_blocks(self.client.read(obj, attribute), reply)
        return self.client.updateValue(obj, attribute, reply.value)

    def read_object_list(self):
        """Association LN attribute 2; returns [(class_id, logical name, version)]."""
        reply = GXReplyData()
        self._read_blocks(self.client.getObjectsRequest(), reply)
        objects = self.client.parseObjects(reply.data, False)
        return [(int(o.objectType), o.logicalName, o.version) for o in objects]

    def read_clock(self, logical_name=CLOCK):
        clock = GXDLMSClock(logical_name)
        self.read(clock, 2)
        return _utc(clock.time)

    def read_register(self, logical_name=IMPORT_ENERGY):
        register = GXDLMSRegister(logical_name)
        self.read(register, 3)           # scaler_unit first, so value is scaled knowingly
        raw = self.read(register, 2)
        # Gurux keeps the scaler as the multiplier 10**scaler (Blue Book 4.3.2)
        return {"value": raw, "scaler": round(math.log10(register.scaler)),
                "unit": int(register.unit)}

    def profile(self, logical_name=HALF_HOURLY_PROFILE):
        """A Profile Generic whose capture objects and period are read from the meter."""
        pg = GXDLMSProfileGeneric(logical_name)
        self.read(pg, 3)
        self.read(pg, 4)
        return pg

    def read_rows_by_range(self, pg, start, end):
        """Selector 1 (Blue Book 4.3.6 range_descriptor) on the first capture object."""
        reply = GXReplyData()
        self._read_blocks(self.client.readRowsByRange(pg, start, end), reply)
        return _rows(self.client.updateValue(pg, 2, reply.value))

    def read_rows_by_entry(self, pg, first, count):
        """Selector 2 (entry_descriptor): entries `first`..`first + count - 1`, 1-based."""
        reply = GXReplyData()
        self._read_blocks(self.client.readRowsByEntry(pg, first, count), reply)
        return _rows(self.client.updateValue(pg, 2, reply.value))

    def read_meter(self, range_start=None, range_end=None, entry_first=1, entry_count=4,
                   register=IMPORT_ENERGY, profile=HALF_HOURLY_PROFILE):
        """The whole first-read session: associate .. release. Returns a MeterReading."""
        reading = MeterReading()
        self.associate()
        reading.objects = self.read_object_list()
        reading.clock = self.read_clock()
        reading.register = self.read_register(register)
        pg = self.profile(profile)
        if range_end is None:
            range_end = reading.clock
        if range_start is None:
            range_start = range_end - datetime.timedelta(hours=2)
        reading.rows_by_range = self.read_rows_by_range(pg, range_start, range_end)
        reading.rows_by_entry = self.read_rows_by_entry(pg, entry_first, entry_count)
        self.release()
        return reading

    def read_list(self, items):
        """GET-Request-With-List of [(obj, attribute)]; -> the values in order."""
        values = []
        for request in self.client.readList(items):
            reply = GXReplyData()
            self._read_blocks(request, reply)
            values.extend(reply.value or [])
        return values

    def write(self, obj, attribute):
        """SET one attribute from `obj`; -> the raw reply bytes (not judged here)."""
        reply = GXReplyData()
        self._read_blocks(self.client.write(obj, attribute), reply, check=False)
        return reply

    def method(self, obj, index, data, data_type):
        """ACTION `index` on `obj`; -> the GXReplyData (error code in `.error`)."""
        reply = GXReplyData()
        self._read_blocks(self.client.method(obj, index, data, data_type), reply, check=False)
        return reply

    # -- wire ---------------------------------------------------------------------------

    def _read_blocks(self, requests, reply, check=True):
        """Send each request; follow GET block transfer / HDLC segmentation to the end."""
        if isinstance(requests, (bytes, bytearray)):
            requests = [requests]       # Gurux returns one frame or a list of frames
        for request in requests:
            reply.clear()
            self._exchange(request, reply, check)
            while reply.isMoreData():
                self._exchange(self.client.receiverReady(reply), reply, check)

    def _exchange(self, request, reply, check=True):
        """One request, then receive until Gurux has a complete frame (and PDU)."""
        wrapper = self.framing == "wrapper"
        p = ReceiveParameters()
        p.allData = True
        p.waitTime = self.wait_ms
        p.eop = None if wrapper else HDLC_FLAG
        p.count = WRAPPER_HEADER_SIZE if wrapper else 5
        self.media.eop = p.eop
        received = GXByteBuffer()
        notify = GXReplyData()
        reply.error = 0
        with self.media.getSynchronous():
            self.exchanges.append(("tx", bytes(request)))
            self.media.send(request)
            while not self.client.getData(received, reply, notify):
                if wrapper:
                    p.count = self.client.getFrameSize(received)
                if not self.media.receive(p):
                    raise PeerError("no complete reply within %d ms after %s; got %s"
                                    % (self.wait_ms, bytes(request).hex(),
                                       bytes(received.array()).hex()))
                self.exchanges.append(("rx", bytes(p.reply)))
                received.set(p.reply)
                p.reply = None
        if check and reply.error != 0:
            raise GXDLMSException(reply.error)


def _rows(buffer):
    """Gurux rows [[GXDateTime, value, ...]] -> [(UTC datetime, value, ...)]."""
    return [(_utc(row[0]),) + tuple(row[1:]) for row in buffer or []]


def _utc(stamp):
    """GXDateTime or datetime -> an aware datetime in UTC (Gurux attaches GXTimeZone)."""
    stamp = getattr(stamp, "value", stamp)
    return stamp.astimezone(datetime.timezone.utc)


def object_kinds(objects):
    """{(class_id, logical name)} for quick membership checks."""
    return {(class_id, name) for class_id, name, _version in objects}


__all__ = ["GuruxPeer", "MeterReading", "PeerError", "object_kinds",
           "CLOCK", "IMPORT_ENERGY", "HALF_HOURLY_PROFILE", "PUBLIC_CLIENT"]
