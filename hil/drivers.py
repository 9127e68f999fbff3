"""Drivers: how a resource is used (labgrid's split; the resources are hil/resources.py).

- `HdlcDriver` / `WrapperDriver`: the data link (IEC 62056-46 HDLC, IEC 62056-47 wrapper)
  over a resource's byte stream, one link per client association
- `DlmsDriver`: xDLMS on top of either (associate, GET, SET, ACTION, profile reads, raw
  APDUs), on the host `construct` codecs through `emulator.client.DlmsClient`
- `GbcsDriver`: GBCS use cases through the in-process lab (head-end → DCC → hub → ESME);
  the ESME is the lab's own, or the DUT's (`attach_device`: its GBCS port, e.g. the
  micropython core's GBCS pipe channel), which then holds the lab's ESME credentials
- `FrameLog`: every frame on the wire, hex and decoded (`emulator.decode.dissect`)
"""

import asyncio
import datetime
import re
import time

from emulator.client import DlmsClient, DlmsClientError, to_logical_name
from emulator.decode import dissect
from emulator.link import (ApduReceived, Disconnected, FrameRejected, HdlcPrimary,
                           LinkConnection, LinkError, LinkFailure, WrapperClient)


class DriverError(Exception):
    """A driver used wrongly or a DUT that broke the protocol."""


class ExpectTimeout(AssertionError):
    """`expect` saw no frame (or bytes) that matched within its time."""


# -- frames and the log -----------------------------------------------------------------

class Frame:
    """One frame or APDU with its dissection: `.hex`, `.apdu` (the xDLMS/ACSE PDU name),
    `.fields` (that PDU's decoded fields), `.summary` (one line per layer)."""

    def __init__(self, data, direction="rx"):
        self.data = bytes(data)
        self.direction = direction
        self.time = time.time()
        self._dissection = None

    @property
    def dissection(self):
        if self._dissection is None:
            self._dissection = dissect(self.data)
        return self._dissection

    @property
    def hex(self):
        return self.data.hex()

    def _pdu_layer(self):
        for layer in reversed(self.dissection.layers):
            if layer.name in ("xdlms", "acse"):
                return layer
        return None

    @property
    def apdu(self):
        layer = self._pdu_layer()
        if layer is None:
            return None
        if layer.name == "acse":
            return layer.fields.get("pdu", "").upper()
        return layer.fields.get("apdu")

    @property
    def fields(self):
        layer = self._pdu_layer()
        return dict(layer.fields) if layer is not None else {}

    @property
    def summary(self):
        lines = ["%s: %s" % (layer.name, layer.summary) for layer in self.dissection.layers]
        if self.dissection.error:
            layer, offset, reason = self.dissection.error
            lines.append("error in %s at byte %d: %s" % (layer, offset, reason))
        return lines

    def __repr__(self):
        return "Frame(%s %s %s)" % (self.direction, self.apdu, self.hex[:40])


class FrameLog:
    """Per-test log of every frame: time, direction, hex, then the decoded layers."""

    def __init__(self, path=None):
        self.path = path
        self.frames = []
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "w", encoding="utf-8")

    def record(self, direction, data, decode=True):
        frame = Frame(data, direction)
        self.frames.append(frame)
        if self._file is not None:
            stamp = datetime.datetime.fromtimestamp(frame.time, datetime.timezone.utc)
            arrow = ">>" if direction == "tx" else "<<"
            self._file.write("%s %s %s\n" % (stamp.strftime("%H:%M:%S.%f")[:-3], arrow,
                                             frame.hex))
            if decode:
                for line in frame.summary:
                    self._file.write("      %s\n" % line)
            self._file.flush()
        return frame

    def note(self, text):
        if self._file is not None:
            self._file.write("-- %s\n" % text)
            self._file.flush()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


class FrameSplitter:
    """Cuts a byte stream into whole frames for the log: HDLC by its flag and format
    field (IEC 62056-46 §6.3: 7E, A0|length), the wrapper by its 8-byte header
    (IEC 62056-47 §5.3.2: version, source, destination, length)."""

    def __init__(self, framing):
        self.framing = framing
        self._buf = bytearray()

    def feed(self, data):
        self._buf += data
        return list(self._hdlc() if self.framing == "hdlc" else self._wrapper())

    def _hdlc(self):
        buf = self._buf
        while buf:
            start = buf.find(b"\x7e")
            if start < 0:
                yield bytes(buf)          # noise outside any frame: logged as it came
                buf.clear()
                return
            if start:
                yield bytes(buf[:start])
                del buf[:start]
            if len(buf) > 1 and buf[1] == 0x7E:
                del buf[:1]               # the closing flag of the frame before
                continue
            if len(buf) < 3:
                return
            if buf[1] & 0xF0 != 0xA0:
                yield bytes(buf[:1])
                del buf[:1]
                continue
            end = ((buf[1] & 0x07) << 8 | buf[2]) + 2
            if len(buf) < end:
                return
            yield bytes(buf[:end])
            del buf[:end]

    def _wrapper(self):
        buf = self._buf
        while len(buf) >= 8:
            end = 8 + (buf[6] << 8 | buf[7])
            if len(buf) < end:
                return
            yield bytes(buf[:end])
            del buf[:end]


class LoggedStream:
    """A stream whose traffic goes, frame by frame, to a `FrameLog` (read from the
    `log` attribute at each call, so one stream can serve several tests' logs)."""

    def __init__(self, stream, framing, log=None):
        self.stream = stream
        self.framing = framing
        self.log = log
        self._tx = FrameSplitter(framing)
        self._rx = FrameSplitter(framing)

    def write(self, data):
        for frame in self._tx.feed(data):
            self._record("tx", frame)
        self.stream.write(data)

    def read(self, n, timeout):
        data = self.stream.read(n, timeout)
        if data:
            for frame in self._rx.feed(data):
                self._record("rx", frame)
        return data

    def _record(self, direction, frame):
        if self.log is not None:
            self.log.record(direction, frame)

    def close(self):
        self.stream.close()


# -- data links ---------------------------------------------------------------------------

class _LinkDriver:
    """One data link at a time over a resource: `connect(client_sap)` opens it (closing
    the one before), `connection` is the `emulator.link.LinkConnection`."""

    framing = ""
    new_stream_per_link = False

    def __init__(self, resource, profile, log=None, timeout=3.0, retries=2):
        self.resource = resource
        self.profile = profile
        self.log = log
        self.timeout = timeout
        self.retries = retries
        self.stream = None
        self.connection = None
        self.client_sap = None

    def set_log(self, log):
        self.log = log
        if self.stream is not None:
            self.stream.log = log

    def open_stream(self):
        if self.stream is None:
            self.stream = LoggedStream(self.resource.open_stream(), self.framing, self.log)
        return self.stream

    def connect(self, client_sap):
        self.disconnect()
        if self.new_stream_per_link:
            self.close_stream()
        link = self._new_link(client_sap)
        connection = LinkConnection(link, self.open_stream(), self.timeout, self.retries)
        connection.open()
        self.connection = connection
        self.client_sap = client_sap
        return connection

    def disconnect(self):
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            connection.close()
        except (LinkFailure, ConnectionError, Exception):
            # a DUT that is gone or restarted: the next connect starts a new link anyway
            self.close_stream()

    def close_stream(self):
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()

    def close(self):
        self.disconnect()
        self.close_stream()

    def _new_link(self, client_sap):
        raise NotImplementedError


class HdlcDriver(_LinkDriver):
    """IEC 62056-46: SNRM/UA opens a link for one client address; DISC closes it."""

    framing = "hdlc"

    def _new_link(self, client_sap):
        address = self.profile.get("hdlc") or {}
        return HdlcPrimary(client_address=client_sap,
                           server_upper=address.get("server_upper", 1),
                           server_lower=address.get("server_lower", 0x10))


class WrapperDriver(_LinkDriver):
    """IEC 62056-47: the TCP connection is the link; one per association."""

    framing = "wrapper"
    new_stream_per_link = True

    def _new_link(self, client_sap):
        return WrapperClient(client_wport=client_sap,
                             server_wport=(self.profile.get("wrapper") or {}).get("wport", 1))


LINK_DRIVERS = {"hdlc": HdlcDriver, "wrapper": WrapperDriver}


# -- xDLMS ----------------------------------------------------------------------------------

class DlmsDriver:
    """xDLMS over a link driver; clients are named as in the profile's [clients]."""

    def __init__(self, link, profile):
        self.link = link
        self.profile = profile
        self.client = None
        self._classes = {}

    def client_config(self, name):
        clients = self.profile.get("clients") or {}
        if name not in clients:
            raise DriverError("the profile has no client %r (has %s)"
                              % (name, ", ".join(sorted(clients))))
        return clients[name]

    def associate(self, client="public", password=None):
        """AARQ as the profile's `client`; `password` overrides the profile's (bytes or
        str). Raises DlmsClientError when the DUT refuses."""
        config = self.client_config(client)
        sap = config["sap"]
        if password is None and config.get("password"):
            password = config["password"]
        if isinstance(password, str):
            password = password.encode()
        connection = self.link.connect(sap)
        self.client = DlmsClient(connection)
        self._classes = {}
        return self.client.associate(client_sap=sap, password=password)

    def release(self):
        client, self.client = self.client, None
        try:
            if client is not None and client.conformance:
                client.release()
        finally:
            self.link.disconnect()

    def _client(self):
        if self.client is None:
            raise DriverError("not associated: call associate() first")
        return self.client

    def class_of(self, obis):
        """The class id of a logical name, from the association's object list."""
        ln = to_logical_name(obis)
        if not self._classes:
            for entry in self._client().object_list():
                self._classes[bytes(entry["logical_name"])] = entry["class_id"]
        if ln not in self._classes:
            raise DriverError("%s is not in this association's object list" % (obis,))
        return self._classes[ln]

    def get(self, obis, attribute, class_id=None, selector=None, parameters=None):
        class_id = class_id or self.class_of(obis)
        return self._client().get(class_id, obis, attribute, selector, parameters)

    def set(self, obis, attribute, value, class_id=None):
        class_id = class_id or self.class_of(obis)
        return self._client().set(class_id, obis, attribute, value)

    def action(self, obis, method, parameters=None, class_id=None):
        class_id = class_id or self.class_of(obis)
        return self._client().action(class_id, obis, method, parameters)

    def read_profile(self, obis, **selection):
        return self._client().read_profile(obis, **selection)

    def request(self, apdu):
        """One raw APDU on the open link; the answer APDU (or None)."""
        if self.link.connection is None:
            raise DriverError("no link: associate() (or link.connect) first")
        return self.link.connection.request(bytes(apdu))

    def receive(self, timeout):
        """APDUs the DUT sends on its own (Data-Notification, EventNotification) within
        `timeout` seconds on the open link."""
        connection = self.link.connection
        if connection is None:
            raise DriverError("no link open")
        deadline = time.monotonic() + timeout
        apdus = []
        while not apdus:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            data = connection.stream.read(4096, left)
            if not data:
                continue
            events, out = connection.link.receive(data)
            if out:
                connection.stream.write(out)
            for event in events:
                if isinstance(event, ApduReceived):
                    apdus.append(event.apdu)
                elif isinstance(event, (FrameRejected, LinkError, Disconnected)):
                    raise LinkFailure(event)
        return apdus

    def close(self):
        try:
            self.release()
        except Exception:
            self.link.close()
        self.link.close()


# -- GBCS --------------------------------------------------------------------------------------

class GbcsDriver:
    """GBCS service requests through the in-process lab (emulator/lab.py): a supplier's
    head-end signs, the DCC routes, the hub carries it over the HAN to the device, and
    the response comes back verified at every hop. Targets are named "ESME" or "GSME".

    With `attach_device("ESME", port)` the hub's HAN delivers the ESME's commands to the
    DUT instead of the lab's in-process ESME: `port(message) -> [messages]`. The commands
    are still built, signed and MAC'd by the lab's head-end and DCC, and the DUT's
    responses verified by them and by the lab's observer at every hop; the DUT holds the
    lab's ESME keys and anchors (`device_credentials`)."""

    def __init__(self, seed=0, log=None):
        from emulator import lab as lab_module
        self._lab_module = lab_module
        self.loop = asyncio.new_event_loop()
        self.lab = lab_module.Lab(seed=seed, wan="direct")
        self.loop.run_until_complete(self.lab.start())
        self.log = log
        self.last_utrn = None
        self.targets = {"ESME": lab_module.ESME_EUI, "GSME": lab_module.GSME_EUI,
                        "HUB": lab_module.HUB_EUI}

    def device_credentials(self, name="ESME"):
        """What a DUT standing in for the lab's device `name` is started with: its keys
        and trust anchors (`emulator.runtime.gbcs_credentials`)."""
        from emulator.runtime import gbcs_credentials
        return gbcs_credentials(self.lab.pki, self.target(name), self.lab.anchors())

    def attach_device(self, name, port):
        """Route the HAN traffic for device `name` (only "ESME") to the DUT's GBCS `port`."""
        from emulator.han.nodes import EsmeNode
        if name.upper() != "ESME":
            raise DriverError("only the ESME can be a DUT, not %r" % name)
        self.lab.han.attach(self.target(name), EsmeNode(_DutGbcsPort(port)))

    def target(self, name):
        try:
            return self.targets[name.upper()]
        except KeyError:
            raise DriverError("unknown GBCS target %r (expected ESME, GSME or HUB)" % name)

    def service_request(self, srv, target="ESME", body=None, supplier="A", log_period=None):
        """One SRV (e.g. "4.1.1") from `supplier`'s head-end: the lab's Outcome.
        `log_period` (seconds) asks for the log from that long ago until now."""
        if log_period is not None:
            from emulator import duis
            body = dict(body or {})
            body["ReadLogPeriod"] = {
                "StartDateTime": duis.date_time_text(self.lab.now - int(log_period)),
                "EndDateTime": duis.date_time_text(self.lab.now)}
        first = len(self.lab.hops)
        outcome = self.loop.run_until_complete(
            self.lab.request(supplier, srv, self.target(target), body))
        self._log_hops(self.lab.hops[first:])
        return outcome

    def top_up(self, pence, target="ESME", supplier="A", replay=False):
        """SRV 2.2 with a UTRN the head-end mints for `pence` (CS01a through the Token
        Gateway); `replay` sends the last UTRN again instead (a duplicate)."""
        device = self.target(target)
        if replay:
            if self.last_utrn is None:
                raise DriverError("no UTRN to replay: top up first")
            return self.service_request("2.2", target, {"UTRN": self.last_utrn}, supplier)
        first = len(self.lab.hops)
        outcome = self.loop.run_until_complete(self.lab.run(
            supplier, lambda head_end: head_end.top_up(device, pence), "top up", "2.2", device))
        self._log_hops(self.lab.hops[first:])
        self.last_utrn = outcome.fields.get("utrn")
        return outcome

    def alerts(self, supplier="A"):
        """Alerts the DCC queued for `supplier`'s head-end, verified by the head-end."""
        return self.loop.run_until_complete(self.lab.headends[supplier].collect_alerts())

    def inject(self, data):
        """Bytes on the WAN from someone other than the DCC: what comes back up."""
        first = len(self.lab.hops)
        answers = self.lab.inject(bytes(data))
        self._log_hops(self.lab.hops[first:])
        return answers

    def _log_hops(self, hops):
        if self.log is None:
            return
        for hop in hops:
            self.log.note("%s (%s, %s)" % (hop.name, hop.layer, hop.direction))
            if hop.gbcs is not None:
                self.log.record("tx" if hop.direction == "down" else "rx", hop.gbcs)
            for check in hop.checks:
                self.log.note("   %s: %s %s" % (check["check"], check["result"],
                                                check.get("detail", "")))

    def close(self):
        self.loop.run_until_complete(self.lab.close())
        self.loop.close()


class _DutGbcsPort:
    """A DUT's GBCS port where the lab's `EsmeNode` expects an `EsmeGbcs`: the DUT runs on
    its own clock, so the lab's `now` is not passed on."""

    def __init__(self, port):
        self.port = port

    def receive_gbcs(self, data, now):
        return list(self.port(bytes(data)))


def match_bytes(pattern, data):
    """bytes: found anywhere in data; str: a regex over the hex of data."""
    if isinstance(pattern, (bytes, bytearray)):
        return bytes(pattern) in data
    return re.search(pattern, data.hex()) is not None


__all__ = ["DriverError", "ExpectTimeout", "Frame", "FrameLog", "FrameSplitter",
           "LoggedStream", "HdlcDriver", "WrapperDriver", "LINK_DRIVERS", "DlmsDriver",
           "GbcsDriver", "DlmsClientError", "match_bytes"]
