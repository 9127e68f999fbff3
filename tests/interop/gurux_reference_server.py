"""A known-good DLMS server made only of Gurux parts, to prove `gurux_peer` before it
judges our ESME.

Gurux ships a server engine (`gurux_dlms.GXDLMSServer`) but no runnable meter; this
module gives it a clock, an import-energy register (Wh, scaler per `ReferenceMeter`) and
a half-hourly Profile Generic (clock + register, capture period 1800 s), and serves one
`GXDLMSServer` per TCP connection on 127.0.0.1 over the TCP wrapper. Nothing of smets-emu
is imported here.

gurux-dlms 1.0.203's server engine is not quite finished in Python; the adaptations here
are the smallest that make it serve, each marked where it is made: its GXServerReply lacks
accessors the engine calls, its initialize() appends the object collection to itself, its
GET handler calls `notifyRead()` that no base class defines, Association LN reads an
`isSkipMaxPduSize` that ValueEventArgs names differently, its maxReceivePDUSize property
recurses, and its Profile Generic selective access fails (selector 1 compares a datetime
with 0; selector 2 calls a missing accessor), so `_SelectiveProfile` selects the rows and
hands the encoding back to Gurux's own `getData`. AARE, GET and the wrapper are Gurux's.
It ignores the negotiated PDU size (answers in one APDU, no block transfer), and its HDLC
path cannot answer an SNRM at all (see test_gurux_harness.py for how HDLC is proven).
"""

import datetime
import socketserver
import threading

from gurux_dlms import GXDateTime, GXDLMSServer, GXServerReply
from gurux_dlms.enums import (AccessMode, DataType, InterfaceType, MethodAccessMode,
                              SourceDiagnostic, Unit)
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.internal._GXDataInfo import _GXDataInfo
from gurux_dlms.GXByteBuffer import GXByteBuffer
from gurux_dlms.ValueEventArgs import ValueEventArgs
from gurux_dlms.objects import (
    GXDLMSAssociationLogicalName,
    GXDLMSCaptureObject,
    GXDLMSClock,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
)

UTC = datetime.timezone.utc
HALF_HOUR = datetime.timedelta(seconds=1800)


class ReferenceMeter:
    """The values the reference server holds, so a test can compare what was read."""

    def __init__(self, now, energy_wh=1234567, rows=96, step_wh=250, scaler=0):
        self.now = now
        self.scaler = scaler
        self.energy_wh = energy_wh
        first = now - HALF_HOUR * rows
        self.rows = [(first + HALF_HOUR * i, energy_wh - step_wh * (rows - i))
                     for i in range(rows)]


class _SelectiveProfile(GXDLMSProfileGeneric):
    """Gurux's Profile Generic with selective access that runs: rows whose first column
    lies in [from_value, to_value] (selector 1, range_descriptor) or entries
    from_entry..to_entry, 1-based, 0 = the last (selector 2, entry_descriptor), Blue Book
    4.3.6. Encoding and block transfer stay Gurux's own (`getData`)."""

    def getValue(self, settings, e):
        if e.index == 2 and e.selector in (1, 2) and e.parameters:
            return self.getData(settings, e, self._select(settings, e), None)
        return super().getValue(settings, e)

    def _select(self, settings, e):
        if e.selector == 1:
            start, end = (_datetime(settings, raw) for raw in e.parameters[1:3])
            return [row for row in self.buffer if start <= _stamp(row[0]) <= end]
        first, last = e.parameters[0], e.parameters[1] or len(self.buffer)
        return self.buffer[max(first, 1) - 1:last]


class _GuruxMeter(GXDLMSServer):
    """GXDLMSServer with the objects of `ReferenceMeter`; one instance per connection."""

    def __init__(self, meter, interface, max_pdu_size=512):
        super().__init__(True, interface)
        self.clock = GXDLMSClock("0.0.1.0.0.255")
        self.clock.time = GXDateTime(meter.now)
        self.register = GXDLMSRegister("1.0.1.8.0.255")
        self.register.value = meter.energy_wh
        self.register.scaler = 10 ** meter.scaler
        self.register.unit = Unit.ACTIVE_ENERGY
        self.register.setDataType(2, DataType.UINT32)
        self.profile = _SelectiveProfile("1.0.99.1.0.255")
        self.profile.captureObjects.append((self.clock, GXDLMSCaptureObject(2, 0)))
        self.profile.captureObjects.append((self.register, GXDLMSCaptureObject(2, 0)))
        self.profile.capturePeriod = 1800
        self.profile.profileEntries = len(meter.rows)
        self.profile.entriesInUse = len(meter.rows)
        self.profile.buffer = [[GXDateTime(t), v] for t, v in meter.rows]
        # small, so a 96-row buffer needs blocks (the maxReceivePDUSize property of
        # gurux-dlms 1.0.203 recurses into itself, so set the setting underneath)
        self.settings.maxServerPDUSize = max_pdu_size
        association = GXDLMSAssociationLogicalName()
        for obj in (self.clock, self.register, self.profile, association):
            self.items.append(obj)
        # GXDLMSServer.initialize() appends the whole collection as one item when the
        # object list is empty (a TypeError in gurux-dlms 1.0.203): fill it here.
        for obj in self.items:
            association.objectList.append(obj)
        self.initialize()

    # -- GXDLMSServer callbacks -------------------------------------------------------

    def isTarget(self, serverAddress, clientAddress):
        return clientAddress == 16

    def onValidateAuthentication(self, authentication, password):
        return SourceDiagnostic.NONE

    def onFindObject(self, objectType, sn, ln):
        return None

    def onPreRead(self, args):
        pass

    def notifyRead(self):
        """Called by gurux-dlms 1.0.203's GET handler (with no arguments) before a read."""

    def onGetAttributeAccess(self, arg):
        return AccessMode.READ

    def onGetMethodAccess(self, arg):
        return MethodAccessMode.NO_ACCESS

    def onConnected(self, connectionInfo):
        pass

    def onInvalidConnection(self, connectionInfo):
        pass

    def onDisconnected(self, connectionInfo):
        pass

    def onPreGet(self, args):
        pass

    def onPostGet(self, args):
        pass

    def onPostRead(self, args=None):
        pass

    def onPreWrite(self, args):
        pass

    def onPostWrite(self, args):
        pass

    def onPreAction(self, args):
        pass

    def onPostAction(self, args):
        pass


# gurux-dlms 1.0.203's Association LN reads `e.isSkipMaxPduSize`, which ValueEventArgs
# names `skipMaxPduSize`: alias it (adds a missing accessor, changes no behaviour).
if not hasattr(ValueEventArgs, "isSkipMaxPduSize"):
    ValueEventArgs.isSkipMaxPduSize = property(lambda self: self.skipMaxPduSize)


class _ServerReply(GXServerReply):
    """gurux-dlms 1.0.203's GXDLMSServer calls accessors (setReply, getConnectionInfo,
    getCount, setCount) that its own GXServerReply lacks; this adds exactly those."""

    def setReply(self, value):
        self.reply = value

    def getConnectionInfo(self):
        return self.connectionInfo

    def getCount(self):
        return self.count

    def setCount(self, value):
        self.count = value


def _stamp(value):
    return value.value if isinstance(value, GXDateTime) else value


def _datetime(settings, raw):
    info = _GXDataInfo()
    info.type_ = DataType.DATETIME
    return _stamp(_GXCommon.getData(settings, GXByteBuffer(raw), info).value)


class ReferenceServer:
    """Serves `ReferenceMeter` over the TCP wrapper on 127.0.0.1:<ephemeral>, in a thread."""

    def __init__(self, meter):
        interface = InterfaceType.WRAPPER
        self.meter = meter

        class Connection(socketserver.BaseRequestHandler):
            def handle(conn):
                device = _GuruxMeter(meter, interface)
                while True:
                    data = conn.request.recv(4096)
                    if not data:
                        return
                    reply = _ServerReply(bytearray(data))
                    device.handleRequest(reply)
                    if reply.reply:
                        conn.request.sendall(bytes(reply.reply))

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Connection)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
