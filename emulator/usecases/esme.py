"""ESME use cases, DCC side: the DLMS ACCESS payload of each command and the reading of
its response (GBCS 7.2.x; RTDS 4.5.0 shapes, rebuilt byte for byte in
tests/emulator/test_esme_usecases.py).

  ECS17b  read import registers         {}                                  encrypted
  ECS22b  read HH profile               {"from": s, "to": s}                encrypted
  ECS21a  read daily read log           {"from": s, "to": s}                encrypted
  ECS70   set clock / commission        {"validity_start": s, "validity_end": s,
                                         "clock_base": 5, "preset": None}
  ECS42/43/44  enable / disable / arm   {"script_id": 51 / 52 / 54}
  ECS45   read supply status            {}
  CS01a   top up by UTRN                {"utrn": "20 digits"}
  ECS04b  reset meter balance           {"value": 0}

Times (`s`) are integer seconds since 1970 UTC; GB date-times are written as RTDS writes
them: day of week, deviation and status not specified (`gb_date_time`).
"""

from __future__ import annotations

from emulator.usecases import UseCase, UseCaseError, register
from firmware.cosem import data_protection as DP
from firmware.devices import esme_gbcs as G
from firmware.dlms import access as A
from firmware.dlms import axdr
from firmware.dlms import cosem_datetime as cdt
from firmware.dlms import obis as O
from firmware.gbcs import security as S

CLOCK = O.CLOCK
SUPPLY_SCRIPTS = O.SUPPLY_SCRIPT_TABLE
DISCONNECT_CONTROL = O.DISCONNECT_CONTROL
UNSPECIFIED = cdt.UNSPECIFIED_DATETIME
NULL = (axdr.NULL_DATA, None)
DEFAULT_SCRIPTS = {"ECS42": 51, "ECS43": 52, "ECS44": 54}   # RTDS 4.5.0


def gb_date_time(seconds):
    """A UTC date-time as RTDS writes it: weekday, deviation and status unspecified."""
    year, month, day, hour, minute, second = cdt.civil_from_seconds(seconds)[:6]
    return (year.to_bytes(2, "big") + bytes((month, day, 0xFF, hour, minute, second, 0))
            + b"\x80\x00\xff")


def _request(ctx, specs, data):
    return A.AccessRequest(A.gbcs_long_invoke_id(ctx.counter), b"", specs, data).encode()


def _decode_response(payload):
    try:
        response = A.decode_response(payload)
    except A.AccessError as e:
        raise UseCaseError("not an ACCESS response: %s" % e)
    return response


def _results(response):
    return [(r.kind, r.result) for r in response.results]


def _base(response):
    results = _results(response)
    ok = True
    for _, code in results:
        if code != 0:
            ok = False
            break
    return {"results": results, "ok": ok,
            "long_invoke_id": response.long_invoke_id_and_priority}


class _ProtectedRead(UseCase):
    """ACTION Data protection m1 get_protected_attributes; the response's encrypted
    field is opened with the requester's KA key and the device's KA public key."""

    protection = b""
    target_class = 0
    target_name = b""
    attribute = 2

    def restriction(self, params):
        return DP.restriction_none()

    def build(self, params, ctx):
        element = DP.object_list_element(self.target_class, self.target_name, self.attribute,
                                         0, self.restriction(params))
        parameters = DP.encoded_protection_parameters(ctx.counter, ctx.requester, ctx.target)
        request = (axdr.STRUCTURE, [(axdr.ARRAY, [self._encoded(element)]), parameters])
        spec = A.RequestSpec.action(G.CLASS_DATA_PROTECTION, self.protection, 1)
        return _request(ctx, [spec], [request])

    def _encoded(self, element):
        """The object-list element as A-XDR already written (axdr.RAW): the same element
        as last time (every ECS17b asks for the same registers) is not encoded again."""
        last = self.__dict__.get("_last_element")
        if last is None or last[0] != element:
            last = self._last_element = (element, (axdr.RAW, axdr.encode(element)))
        return last[1]

    def read_response(self, payload, ctx):
        response = _decode_response(payload)
        out = _base(response)
        if not out["ok"]:
            return out
        try:
            params, field = DP.parse_response(response.data[0])
        except Exception as e:
            raise UseCaseError("malformed get_protected_attributes response: %s" % e)
        if params.originator != ctx.target or params.recipient != ctx.requester:
            raise UseCaseError("protected for another pair of parties")
        if ctx.crypto is None or ctx.ka_private is None or ctx.target_ka_public is None:
            raise UseCaseError("reading an encrypted field needs crypto and both KA keys")
        shared = ctx.crypto.ecdh(ctx.ka_private, ctx.target_ka_public)
        key = S.derive_key(ctx.crypto, shared, params.originator, DP.KDF_MODE_ENCRYPTION,
                           params.counter, params.recipient)
        try:
            plaintext = DP.decrypt_field(ctx.crypto, key, params.originator, field)
            values = axdr.decode_all(plaintext)[1]
        except (ValueError, axdr.AxdrError) as e:
            raise UseCaseError("encrypted field does not open: %s" % e)
        out["counter"] = params.counter
        out.update(self.fields(values[0]))
        return out

    def fields(self, value):
        return {"value": value}


def _date_restriction(params):
    try:
        return DP.restriction_by_date(gb_date_time(params["from"]), gb_date_time(params["to"]))
    except KeyError as e:
        raise UseCaseError("parameter %s missing" % e)


def _unix(zigbee_seconds):
    return zigbee_seconds + G.ZIGBEE_EPOCH


@register
class ECS17b(_ProtectedRead):
    name = "ECS17b"
    protection = G.DP_REGISTERS
    target_class = G.CLASS_DATA
    target_name = G.GB_IMPORT_REGISTERS

    def fields(self, value):
        items = value[1]
        out = {"import_wh": items[0][1],
               "import_scaler_unit": (items[1][1][0][1], items[1][1][1][1]),
               "reactive_import_varh": items[2][1],
               "reactive_scaler_unit": (items[3][1][0][1], items[3][1][1][1])}
        if len(items) > 4:
            out["secondary_import_wh"] = items[4][1]
        return out


@register
class ECS22b(_ProtectedRead):
    name = "ECS22b"
    protection = G.DP_HH_PROFILE
    target_class = G.CLASS_PROFILE
    target_name = G.GB_HH_PROFILE

    def restriction(self, params):
        return _date_restriction(params)

    def fields(self, value):
        rows = value[1][1]
        return {"entries": [(_unix(r[1][0][1]), r[1][1][1]) for r in rows]}


@register
class ECS21a(_ProtectedRead):
    name = "ECS21a"
    protection = G.DP_DAILY_LOG
    target_class = G.CLASS_PROFILE
    target_name = G.GB_DAILY_LOG

    def restriction(self, params):
        return _date_restriction(params)

    def fields(self, value):
        days = []
        for row in value[1][1]:
            items = row[1]
            day = {"time": _unix(items[0][1]), "total": items[1][1]}
            if items[2][0] != axdr.ARRAY:
                # twin element (RTDS 4.6.1 TWIN): secondary total after the primary total,
                # and the secondary TOU registers after the primary TOU array
                day["secondary_total"] = items[2][1]
                day["tou"] = [v[1] for v in items[3][1]]
                day["secondary_tou"] = [v[1] for v in items[4][1]]
                blocks = items[5:]
            else:
                day["tou"] = [v[1] for v in items[2][1]]
                blocks = items[3:]
            day["blocks"] = [[v[1] for v in block[1]] for block in blocks]
            days.append(day)
        return {"days": days}


class _ClockSet(UseCase):
    def build(self, params, ctx):
        try:
            start = gb_date_time(params["validity_start"])
            end = gb_date_time(params["validity_end"])
        except KeyError as e:
            raise UseCaseError("parameter %s missing" % e)
        preset = params.get("preset")
        preset = UNSPECIFIED if preset is None else gb_date_time(preset)
        specs = [A.RequestSpec.set(G.CLASS_CLOCK, CLOCK, 9),
                 A.RequestSpec.action(G.CLASS_CLOCK, CLOCK, 5),
                 A.RequestSpec.action(G.CLASS_CLOCK, CLOCK, 4),
                 A.RequestSpec.get(G.CLASS_CLOCK, CLOCK, 2),
                 A.RequestSpec.get(G.CLASS_CLOCK, CLOCK, 4)]
        data = [(axdr.ENUM, params.get("clock_base", 5)),
                (axdr.STRUCTURE, [(axdr.OCTET_STRING, preset), (axdr.OCTET_STRING, start),
                                  (axdr.OCTET_STRING, end)]),
                (axdr.INTEGER, 0), NULL, NULL]
        return _request(ctx, specs, data)

    def _encoded(self, element):
        """The object-list element as A-XDR already written (axdr.RAW): the same element
        as last time (every ECS17b asks for the same registers) is not encoded again."""
        last = self.__dict__.get("_last_element")
        if last is None or last[0] != element:
            last = self._last_element = (element, (axdr.RAW, axdr.encode(element)))
        return last[1]

    def read_response(self, payload, ctx):
        response = _decode_response(payload)
        out = _base(response)
        clock = response.data[3] if len(response.data) > 3 else NULL
        out["clock"] = None
        if clock[0] == axdr.OCTET_STRING and len(clock[1]) == 12:
            out["clock"] = cdt.datetime_seconds(bytes(clock[1]))
        status = response.data[4] if len(response.data) > 4 else NULL
        out["clock_status"] = status[1] if status[0] == axdr.UNSIGNED else None
        return out


@register
class ECS70(_ClockSet):
    name = "ECS70"


@register
class ECS70Commission(_ClockSet):
    name = "ECS70Commission"


class _Supply(UseCase):
    def build(self, params, ctx):
        script_id = params.get("script_id", DEFAULT_SCRIPTS[self.name])
        spec = A.RequestSpec.action(G.CLASS_SCRIPT, SUPPLY_SCRIPTS, 1)
        return _request(ctx, [spec], [(axdr.LONG_UNSIGNED, script_id)])

    def read_response(self, payload, ctx):
        return _base(_decode_response(payload))


@register
class ECS42(_Supply):
    name = "ECS42"


@register
class ECS43(_Supply):
    name = "ECS43"


@register
class ECS44(_Supply):
    name = "ECS44"


@register
class ECS45(UseCase):
    name = "ECS45"

    def build(self, params, ctx):
        spec = A.RequestSpec.get(G.CLASS_DISCONNECT, DISCONNECT_CONTROL, 3)
        return _request(ctx, [spec], [NULL])

    def _encoded(self, element):
        """The object-list element as A-XDR already written (axdr.RAW): the same element
        as last time (every ECS17b asks for the same registers) is not encoded again."""
        last = self.__dict__.get("_last_element")
        if last is None or last[0] != element:
            last = self._last_element = (element, (axdr.RAW, axdr.encode(element)))
        return last[1]

    def read_response(self, payload, ctx):
        response = _decode_response(payload)
        out = _base(response)
        value = response.data[0] if response.data else NULL
        out["supply_state"] = value[1] if out["ok"] and value[0] == axdr.ENUM else None
        return out


@register
class CS01a(UseCase):
    name = "CS01a"

    def build(self, params, ctx):
        try:
            utrn = params["utrn"]
        except KeyError:
            raise UseCaseError("parameter 'utrn' missing")
        if isinstance(utrn, str):
            utrn = utrn.encode()
        if ctx.counter & 0xFFFFFFFF:
            raise UseCaseError("a top-up's counter has its low 32 bits zero (GBCS 14)")
        spec = A.RequestSpec.action(G.CLASS_TOKEN_GATEWAY, G.TOKEN_GATEWAY, 1)
        return _request(ctx, [spec], [(axdr.OCTET_STRING, bytes(utrn))])

    def read_response(self, payload, ctx):
        return _base(_decode_response(payload))


@register
class ECS04b(UseCase):
    name = "ECS04b"

    def build(self, params, ctx):
        value = params.get("value", 0)
        specs = [A.RequestSpec.action(G.CLASS_CREDIT, name, 2) for name in G.CREDITS]
        return _request(ctx, specs, [(axdr.DOUBLE_LONG, value)] * len(specs))

    def read_response(self, payload, ctx):
        return _base(_decode_response(payload))
