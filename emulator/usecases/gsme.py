"""GSME use cases, DCC side: the GBZ (or ASN.1) payload of each command and the reading of
its response, with the ZCL frames built and read through zigpy (`emulator/codec/gbz.py`).
RTDS 4.5.0 shapes, rebuilt byte for byte in tests/emulator/test_gsme_usecases.py.

  GCS13a  read registers       {"attributes": [0x0302, 0x0301, 0x0300, 0x0000]}  encrypted
  GCS17   read HH profile      {"from": s, "count": 97, "sample_id": 0}         encrypted
  GCS33   read valve status    {"attributes": [0x0205, 0x0014]}                 in clear
  GCS32   close the valve      {"issuer_event_id": ZigBee UTC, "provider_id": 0,
                                "request_date_time": 0, "implementation_date_time": 0}
  GCS39   arm the valve        as GCS32
  CS01b   top up by UTRN       {"utrn": "20 digits"}
  GCS28   set clock            {"validity_start": s, "validity_end": s}         ASN.1

Times (`s`) are integer seconds since 1970 UTC; ZigBee UTC is seconds since 2000. The
issuer event id defaults to the ZigBee UTC of `ctx.now` (RTDS: 2015-01-01T00:00Z).
Encrypted response components open with the requester's KA key and the GSME's KA public
key, KDF mode 4 over (GSME, the command's counter, requester).
"""

from __future__ import annotations

import calendar
import time

import zigpy.types as t

from emulator.codec import gbcs_asn1
from emulator.codec import gbz as H
from emulator.usecases import UseCase, UseCaseError, register
from firmware.gbcs import security as S

ZIGBEE_EPOCH = 946684800
METERING = H.METERING
PREPAYMENT = H.PREPAYMENT
GCS13A_ATTRIBUTES = [0x0302, 0x0301, 0x0300, 0x0000]
GCS33_ATTRIBUTES = [0x0205, 0x0014]
ATTRIBUTE_NAMES = {0x0000: "current_summation_delivered", 0x0014: "supply_status",
                   0x0205: "remaining_battery_life_days",
                   0x0300: "unit_of_measure", 0x0301: "multiplier", 0x0302: "divisor"}
SUPPLY_OFF = 0
SUPPLY_ARMED = 1
ACKNOWLEDGE_REQUIRED = 0x01
ORIGINATING_DEVICE_ESI = 0x00

# frame controls (ZCL r7 2.4.1.1) of the commands, as RTDS sends them
FC_GENERAL_C2S = 0x00
FC_CLUSTER_C2S = 0x01


def zigbee_time(seconds: int) -> int:
    return seconds - ZIGBEE_EPOCH


def generalized_time(seconds: int) -> str:
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(seconds))


def from_generalized_time(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y%m%d%H%M%SZ"))


def _command(cluster_id: int, frame_control: int, definition, **fields) -> bytes:
    header = H.zcl_header(frame_control, 0, definition.id)
    try:
        command = definition.schema(**fields)
    except (TypeError, ValueError) as e:
        raise UseCaseError("%s: %s" % (definition.name, e))
    return H.encode(H.payload([H.plain_component(cluster_id, header, command)]))


def _frames(payload: bytes, ctx) -> list:
    """The response's ZCL frames (zigpy), encrypted components opened."""
    try:
        value = H.decode(payload)
    except H.GbzCodecError as e:
        raise UseCaseError("not a GBZ response: %s" % e)
    if value.alert is not None or not value.components:
        raise UseCaseError("a GBZ response carries components")
    frames = []
    for component in value.components:
        content = component.body.content
        if not H.is_encrypted(component):
            frames.append((component.cluster_id, content))
            continue
        plain = _open(component, ctx)
        try:
            frames.append((component.cluster_id, H.parse_zcl(component.cluster_id, plain)))
        except ValueError as e:
            raise UseCaseError("decrypted ZCL frame does not parse: %s" % e)
    return frames


def _open(component, ctx) -> bytes:
    if ctx.crypto is None or ctx.ka_private is None or ctx.target_ka_public is None:
        raise UseCaseError("reading an encrypted component needs crypto and both KA keys")
    content = component.body.content
    shared = ctx.crypto.ecdh(ctx.ka_private, ctx.target_ka_public)
    key = S.derive_key(ctx.crypto, shared, ctx.target, S.KDF_MODE_PAYLOAD_ENCRYPTION,
                       ctx.counter, ctx.requester)
    sealed = content.field.sealed
    try:
        plaintext = ctx.crypto.gcm_decrypt(key, S.mac_iv(ctx.target), sealed[:-H.TAG_LENGTH],
                                           bytes((S.ENCRYPTED_FIELD_TAG,)),
                                           sealed[-H.TAG_LENGTH:])
    except ValueError as e:
        raise UseCaseError("encrypted component does not open: %s" % e)
    return content.header.serialize() + plaintext


def _one(payload, ctx, cluster_id):
    frames = _frames(payload, ctx)
    if len(frames) != 1 or frames[0][0] != cluster_id:
        raise UseCaseError("one component of cluster 0x%04X expected" % cluster_id)
    return frames[0][1]


def _default_status(frame):
    """{"ok": False, "status": ZCL status} for a Default Response, else None."""
    if frame.name == "Default_Response":
        return {"ok": False, "status": int(frame.command.status),
                "command_id": int(frame.command.command_id)}
    return None


class _ReadAttributes(UseCase):
    attributes = GCS13A_ATTRIBUTES

    def build(self, params, ctx):
        ids = [t.uint16_t(i) for i in params.get("attributes", self.attributes)]
        read = H.GENERAL_COMMANDS[0x00]
        return _command(METERING, FC_GENERAL_C2S, read, attribute_ids=ids)

    def read_response(self, payload, ctx):
        frame = _one(payload, ctx, METERING)
        refused = _default_status(frame)
        if refused is not None:
            return refused
        if frame.name != "Read_Attributes_rsp":
            raise UseCaseError("expected a Read Attributes Response, got %s" % frame.name)
        out = {"ok": True, "records": []}
        for record in frame.command.status_records:
            status = int(record.status)
            value = None if record.value is None else int(record.value.value)
            out["records"].append((int(record.attrid), status, value))
            name = ATTRIBUTE_NAMES.get(int(record.attrid))
            if name is not None:
                out[name] = value
            if status:
                out["ok"] = False
        return out


@register
class GCS13a(_ReadAttributes):
    name = "GCS13a"


@register
class GCS33(_ReadAttributes):
    name = "GCS33"
    attributes = GCS33_ATTRIBUTES


@register
class GCS17(UseCase):
    name = "GCS17"

    def build(self, params, ctx):
        try:
            earliest = zigbee_time(params["from"])
        except KeyError as e:
            raise UseCaseError("parameter %s missing" % e)
        definition = H.CLUSTER_COMMANDS[(METERING, False, 0x08)]
        return _command(METERING, FC_CLUSTER_C2S, definition,
                        sample_id=params.get("sample_id", 0), earliest_sample_time=earliest,
                        sample_type=0, number_of_samples=params.get("count", 48))

    def read_response(self, payload, ctx):
        frame = _one(payload, ctx, METERING)
        refused = _default_status(frame)
        if refused is not None:
            return refused
        if frame.name != "get_sampled_data_response":
            raise UseCaseError("expected GetSampledDataResponse, got %s" % frame.name)
        c = frame.command
        return {"ok": True, "sample_id": int(c.sample_id),
                "start": int(c.sample_start_time) + ZIGBEE_EPOCH,
                "interval": int(c.sample_request_interval),
                "samples": [int(s) for s in c.samples]}


class _ChangeSupply(UseCase):
    proposed = SUPPLY_OFF

    def build(self, params, ctx):
        definition = H.CLUSTER_COMMANDS[(METERING, False, 0x0B)]
        return _command(METERING, FC_CLUSTER_C2S, definition,
                        provider_id=params.get("provider_id", 0),
                        issuer_event_id=params.get("issuer_event_id", zigbee_time(ctx.now)),
                        request_date_time=params.get("request_date_time", 0),
                        implementation_date_time=params.get("implementation_date_time", 0),
                        proposed_supply_status=self.proposed,
                        supply_control_bits=params.get("supply_control_bits",
                                                       ACKNOWLEDGE_REQUIRED))

    def read_response(self, payload, ctx):
        frame = _one(payload, ctx, METERING)
        refused = _default_status(frame)
        if refused is not None:
            return refused
        if frame.name != "supply_status_response":
            raise UseCaseError("expected SupplyStatusResponse, got %s" % frame.name)
        c = frame.command
        return {"ok": int(c.supply_status) == self.proposed,
                "supply_status": int(c.supply_status),
                "issuer_event_id": int(c.issuer_event_id)}


@register
class GCS32(_ChangeSupply):
    name = "GCS32"
    proposed = SUPPLY_OFF


@register
class GCS39(_ChangeSupply):
    name = "GCS39"
    proposed = SUPPLY_ARMED


@register
class CS01b(UseCase):
    name = "CS01b"

    def build(self, params, ctx):
        try:
            utrn = params["utrn"]
        except KeyError:
            raise UseCaseError("parameter 'utrn' missing")
        if isinstance(utrn, str):
            utrn = utrn.encode()
        if ctx.counter & 0xFFFFFFFF:
            raise UseCaseError("a top-up's counter has its low 32 bits zero (GBCS 14)")
        return _command(PREPAYMENT, FC_CLUSTER_C2S, H.CONSUMER_TOP_UP,
                        originating_device=params.get("originating_device",
                                                      ORIGINATING_DEVICE_ESI),
                        topup_code=t.LVBytes(utrn))

    def read_response(self, payload, ctx):
        frame = _one(payload, ctx, PREPAYMENT)
        refused = _default_status(frame)
        if refused is not None:
            return refused
        if frame.name != "consumer_top_up_response":
            raise UseCaseError("expected ConsumerTopUpResponse, got %s" % frame.name)
        c = frame.command
        return {"ok": int(c.result_type) == 0, "result_type": int(c.result_type),
                "top_up_value": int(c.top_up_value), "credit_remaining": int(c.credit_remaining),
                "source_of_top_up": int(c.source_of_top_up)}


class _SetTime(UseCase):
    def build(self, params, ctx):
        try:
            value = {"validity_start": generalized_time(params["validity_start"]),
                     "validity_end": generalized_time(params["validity_end"])}
        except KeyError as e:
            raise UseCaseError("parameter %s missing" % e)
        return gbcs_asn1.encode("gcs28_command", value)

    def read_response(self, payload, ctx):
        try:
            value = gbcs_asn1.decode("gcs28_response", payload)
        except gbcs_asn1.Asn1CodecError as e:
            raise UseCaseError("not a set-time response: %s" % e)
        return {"ok": value.time_status == 0, "time_status": value.time_status,
                "device_time": from_generalized_time(value.device_time)}


@register
class GCS28(_SetTime):
    name = "GCS28"


@register
class GCS28Commission(_SetTime):
    name = "GCS28Commission"

