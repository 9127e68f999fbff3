"""GBZ (GBCS v4 clause 7.3) as declarative `construct`, with the ZCL frames inside built
and parsed by zigpy's ZCL (`zigpy.zcl.foundation`, `zigpy.types`, zigpy's Metering).

The host-side oracle for `firmware/gbcs/gbz.py` and `firmware/zcl/`: written from the
same tables (ZigBee SE 1.4 and ZCL r7), sharing no code, compared with them on every RTDS
`01 09` payload and on generated ones. Layout (checked on RTDS 4.5.0):

    01 09 | count | component*count                     (command, response)
    01 09 | count | alert code (2) | time stamp (4) | future-dated body | components
    component:  control | cluster id (2, BE) | length (2, BE) | body
    body:       [from date-time (4, BE)] | ZCL frame                           plain
                additional header (2) | ZCL header | ciphered length (2, BE) |
                31 00000000 ciphertext tag(12)                                 encrypted

ZCL commands decoded into zigpy objects: the general Read Attributes (+ response) and
Default Response; Metering GetSampledData (+ response), ChangeSupply and
SupplyStatusResponse as zigpy defines them; Prepayment ConsumerTopUp (+ response), which
zigpy lacks, described here with zigpy's declarative command definitions. Other commands
keep their payload as bytes under a zigpy-decoded header.

Compiled where the layout is fixed (the alert header and the future-dated alert body);
the component body is not: its ZCL frame goes through zigpy, which construct's compiler
cannot emit.
"""

from __future__ import annotations

import io
import struct

import zigpy.types as t
from construct import (
    Adapter,
    Array,
    Byte,
    Const,
    Construct,
    ConstructError,
    Container,
    ExprValidator,
    GreedyBytes,
    If,
    IfThenElse,
    Int16ub,
    Int32ub,
    Int64ub,
    Peek,
    Prefixed,
    Struct,
    Terminated,
    Tell,
    this,
)
from zigpy.zcl import foundation
from zigpy.zcl.clusters.smartenergy import Metering

from emulator.codec.errors import CodecError

PROFILE = b"\x01\x09"
CONTROL_LAST = 0x01
CONTROL_ENCRYPTED = 0x02
CONTROL_FROM_DATE_TIME = 0x10
FUTURE_DATED_ALERTS = (0x8F66, 0x8F67)
ENCRYPTED_FIELD_HEADER = b"\x31\x00\x00\x00\x00"
TAG_LENGTH = 12
METERING = 0x0702
PREPAYMENT = 0x0705
S2C = foundation.Direction.Server_to_Client
C2S = foundation.Direction.Client_to_Server


class GbzCodecError(CodecError):
    layer = "gbz"


# -- ZCL commands (SE 1.4) --------------------------------------------------------------
# Prepayment D.7.2.3.5 ConsumerTopUp and D.7.2.4.4 ConsumerTopUpResponse: zigpy's
# Prepayment cluster has no commands, so they are declared here in zigpy's own style.
CONSUMER_TOP_UP = foundation.ZCLCommandDef(
    id=0x04, name="consumer_top_up", direction=C2S,
    schema={"originating_device": t.uint8_t, "topup_code": t.LVBytes},
).with_compiled_schema()
CONSUMER_TOP_UP_RESPONSE = foundation.ZCLCommandDef(
    id=0x03, name="consumer_top_up_response", direction=S2C,
    schema={"result_type": t.uint8_t, "top_up_value": t.int32s,
            "source_of_top_up": t.uint8_t, "credit_remaining": t.int32s},
).with_compiled_schema()

# (cluster id, server to client, command id) -> zigpy command definition
CLUSTER_COMMANDS = {
    (METERING, False, 0x08): Metering.ServerCommandDefs.get_sampled_data,
    (METERING, False, 0x0B): Metering.ServerCommandDefs.change_supply,
    (METERING, True, 0x07): Metering.ClientCommandDefs.get_sampled_data_response,
    (METERING, True, 0x0C): Metering.ClientCommandDefs.supply_status_response,
    (PREPAYMENT, False, 0x04): CONSUMER_TOP_UP,
    (PREPAYMENT, True, 0x03): CONSUMER_TOP_UP_RESPONSE,
}
GENERAL_COMMANDS = {
    0x00: foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes],
    0x01: foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes_rsp],
    0x0B: foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Default_Response],
}


def command_def(cluster_id: int, header: foundation.ZCLHeader):
    """The zigpy definition of the command a header names, or None (kept as bytes)."""
    fc = header.frame_control
    if fc.is_manufacturer_specific:
        return None
    if fc.frame_type == foundation.FrameType.GLOBAL_COMMAND:
        return GENERAL_COMMANDS.get(header.command_id)
    return CLUSTER_COMMANDS.get((cluster_id, fc.direction == S2C, header.command_id))


def zcl_header(frame_control: int, tsn: int, command_id: int,
               manufacturer: int | None = None) -> foundation.ZCLHeader:
    """A zigpy ZCL header from the frame control octet as it travels (ZCL r7 2.4.1.1)."""
    fc, _ = foundation.FrameControl.deserialize(bytes((frame_control,)))
    return foundation.ZCLHeader(frame_control=fc, manufacturer=manufacturer, tsn=tsn,
                                command_id=command_id)


def parse_zcl(cluster_id: int, data: bytes) -> Container:
    """A ZCL frame: zigpy header, and the zigpy command (or the payload bytes)."""
    if len(data) < 1 or data[0] & 0xE0 or data[0] & 0x03 > 1:
        raise ValueError("ZCL frame control uses reserved bits")
    header, rest = foundation.ZCLHeader.deserialize(bytes(data))
    definition = command_def(cluster_id, header)
    if definition is None:
        return Container(header=header, name=None, command=bytes(rest))
    command, extra = definition.schema.deserialize(rest)
    if extra:
        raise ValueError("%d bytes after the %s command" % (len(extra), definition.name))
    return Container(header=header, name=definition.name, command=command)


def build_zcl(frame: Container) -> bytes:
    command = frame.command
    body = command if isinstance(command, (bytes, bytearray)) else command.serialize()
    return frame.header.serialize() + bytes(body)


class ZclFrame(Adapter):
    """GreedyBytes <-> {header, name, command} through zigpy."""

    def __init__(self, cluster_id):
        super().__init__(GreedyBytes)
        self.cluster_id = cluster_id

    def _decode(self, obj, context, path):
        try:
            return parse_zcl(self.cluster_id(context), obj)
        except (ValueError, KeyError) as e:
            raise ConstructError("ZCL: %s" % e, path=path)

    def _encode(self, obj, context, path):
        return build_zcl(obj)


class ZclHeaderOnly(Construct):
    """The ZCL header of an encrypted component (its payload is the ciphertext)."""

    def _parse(self, stream, context, path):
        first = stream.read(1)
        if not first:
            raise ConstructError("ZCL header expected", path=path)
        if first[0] & 0xE0 or first[0] & 0x03 > 1:
            raise ConstructError("ZCL frame control uses reserved bits", path=path)
        rest = stream.read(4 if first[0] & 0x04 else 2)
        if len(rest) < (4 if first[0] & 0x04 else 2):
            raise ConstructError("ZCL header runs past the component", path=path)
        return foundation.ZCLHeader.deserialize(first + rest)[0]

    def _build(self, obj, stream, context, path):
        stream.write(obj.serialize())
        return obj


EncryptedField = Struct(
    "security_header" / Const(ENCRYPTED_FIELD_HEADER),
    "sealed" / ExprValidator(GreedyBytes, lambda obj, ctx: len(obj) >= TAG_LENGTH),
)

EncryptedZcl = Struct(
    "additional_header_control" / Byte,
    "frame_counter" / Byte,
    "header" / ZclHeaderOnly(),
    "field" / Prefixed(Int16ub, EncryptedField),
)

Component = Struct(
    "offset" / Tell,
    "control" / ExprValidator(Byte, lambda obj, ctx: obj & ~0x13 & 0xFF == 0),
    "cluster_id" / Int16ub,
    "body" / Prefixed(Int16ub, Struct(
        "from_date_time" / If(this._.control & CONTROL_FROM_DATE_TIME, Int32ub),
        "content" / IfThenElse(this._.control & CONTROL_ENCRYPTED, EncryptedZcl,
                               ZclFrame(lambda ctx: ctx._.cluster_id)),
        Terminated,
    )),
)

# GBZ future-dated alert body (GBCS 7.3.x; RTDS 8F66 alerts): length 14, then the command
FutureDated = Struct(
    "length" / Const(b"\x0e"),
    "message_code" / Int16ub,
    "originator_counter" / Int64ub,
    "cluster_id" / Int16ub,
    "frame_control" / Byte,
    "command_id" / Byte,
).compile()

AlertHeader = Struct("alert_code" / Int16ub, "time_stamp" / Int32ub).compile()


def _is_alert(ctx):
    if ctx._parsing:
        return ctx.peek is not None and ctx.peek & 0x80
    return ctx.get("alert") is not None


Gbz = Struct(
    "profile" / Const(PROFILE),
    "count" / Byte,
    "peek" / Peek(Byte),
    "alert" / If(_is_alert, AlertHeader),
    "future_dated" / If(lambda ctx: ctx.alert is not None
                        and ctx.alert.alert_code in FUTURE_DATED_ALERTS, FutureDated),
    "components" / If(lambda ctx: ctx.future_dated is None, Array(this.count, Component)),
    Terminated,
)


def decode(data: bytes) -> Container:
    """Parse a GBZ payload; raises GbzCodecError(offset, reason)."""
    stream = io.BytesIO(bytes(data))
    try:
        value = Gbz.parse_stream(stream)
    except (ConstructError, struct.error) as e:     # compiled fields raise struct.error
        raise GbzCodecError(stream.tell(), _reason(e)) from None
    components = value.components or []
    for i, component in enumerate(components):
        if bool(component.control & CONTROL_LAST) != (i == len(components) - 1):
            raise GbzCodecError(component.offset,
                                "the last-component flag must be on the last one only")
    return value


def encode(value: Container) -> bytes:
    try:
        return Gbz.build(value)
    except (ConstructError, ValueError, TypeError, AttributeError) as e:
        raise GbzCodecError(None, _reason(e)) from None


# -- building values -------------------------------------------------------------------

def plain_component(cluster_id: int, header: foundation.ZCLHeader, command,
                    from_date_time: int | None = None) -> Container:
    control = CONTROL_FROM_DATE_TIME if from_date_time is not None else 0
    definition = command_def(cluster_id, header)
    name = definition.name if definition is not None else None
    return Container(offset=None, control=control, cluster_id=cluster_id, body=Container(
        from_date_time=from_date_time,
        content=Container(header=header, name=name, command=command)))


def encrypted_component(cluster_id: int, header: foundation.ZCLHeader, sealed: bytes,
                        frame_counter: int = 0, additional_header_control: int = 0
                        ) -> Container:
    """`sealed` is ciphertext || 12-byte tag (the field header 31 00000000 is added)."""
    return Container(offset=None, control=CONTROL_ENCRYPTED, cluster_id=cluster_id,
                     body=Container(from_date_time=None, content=Container(
                         additional_header_control=additional_header_control,
                         frame_counter=frame_counter, header=header,
                         field=Container(security_header=ENCRYPTED_FIELD_HEADER,
                                         sealed=bytes(sealed)))))


def payload(components, alert_code: int | None = None, time_stamp: int = 0) -> Container:
    """A GBZ payload from components; the last one gets the last-component flag."""
    components = list(components)
    for i, component in enumerate(components):
        last = CONTROL_LAST if i == len(components) - 1 else 0
        component.control = (component.control & ~CONTROL_LAST) | last
    alert = None
    if alert_code is not None:
        alert = Container(alert_code=alert_code, time_stamp=time_stamp)
    return Container(profile=PROFILE, count=len(components), peek=None, alert=alert,
                     future_dated=None, components=components)


def plain_fields(value: Container) -> dict:
    """A decoded message as plain values, to compare one reading with another: the count,
    the alert (code, time stamp), the future-dated alert's fields, and per component its
    cluster, from-date-time, whether it is encrypted and its ZCL header (frame control,
    manufacturer, tsn, command id). Each caller adds the payload in its own terms."""
    out = {"count": value.count, "alert": None, "future_dated": None, "components": []}
    if value.alert is not None:
        out["alert"] = (value.alert.alert_code, value.alert.time_stamp)
    if value.future_dated is not None:
        d = value.future_dated
        out["future_dated"] = (d.message_code, d.originator_counter, d.cluster_id,
                               d.frame_control, d.command_id)
    for c in value.components or []:
        header = c.body.content.header
        out["components"].append({
            "cluster": c.cluster_id, "from": c.body.from_date_time, "encrypted": is_encrypted(c),
            "header": (header.frame_control.serialize()[0], header.manufacturer, header.tsn,
                       header.command_id)})
    return out


def is_encrypted(component: Container) -> bool:
    return bool(component.control & CONTROL_ENCRYPTED)


def _reason(e: Exception) -> str:
    """construct's "Error in path P\nmessage" as "message (at P)"."""
    lines = [line for line in str(e).split("\n") if line]
    if not lines:
        return type(e).__name__
    if len(lines) > 1 and lines[0].startswith("Error in path"):
        where = lines[0][len("Error in path"):].replace("(parsing)", "").replace(
            "(building)", "").strip(" ->")
        return "%s (at %s)" % (" ".join(lines[1:]), where)
    return lines[0]
