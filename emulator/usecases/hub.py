"""Comms hub use cases, DCC side: the CHF device log (SRV 8.11; GBCS CCS01 / CCS02).

Both are a DLMS ACCESS request (Green Book ACCESS service, D9/DA) on ZigBee network
control, class 104, 0.0.30.3.0.255 (DOMAIN.md "Payload mappings"; RTDS 8.11 shapes,
rebuilt byte for byte in tests/emulator/test_hub_usecases.py), run by
firmware/devices/chf.py:

  CCS01  add a device       {"device": EUI-64, "install_code": bytes, "join_time": s,
                             "device_type": 1, "extra": 0, "joining": True}
         ACTION m1 register_device {EUI, device type (enum), install code, enum},
         SET attr 3 join_timeout (long-unsigned), SET attr 2 enable_disable_joining
  CCS02  remove a device    {"device": EUI-64}
         ACTION m2 unregister_device (EUI)

`device_type` and `extra` are the two enums of register_device as RTDS 8.11 writes them
for an ESME (1 and 0); what the other values mean is not in our sources, so they are
carried, not interpreted.
"""

from __future__ import annotations

from emulator.usecases import UseCase, UseCaseError, register
from firmware.devices import chf
from firmware.dlms import access as A
from firmware.dlms import axdr

ZNC_CLASS = chf.CLASS_ZIGBEE_NETWORK_CONTROL
ZNC = chf.ZIGBEE_NETWORK_CONTROL
RTDS_DEVICE_TYPE = 1          # RTDS 8.11 CCS01 (an ESME)
RTDS_EXTRA = 0
MAX_JOIN_TIME = 0xFFFF        # join_timeout is long-unsigned


def _eui(params):
    try:
        eui = bytes(params["device"])
    except KeyError as e:
        raise UseCaseError("parameter %s missing" % e)
    if len(eui) != 8:
        raise UseCaseError("device must be an EUI-64 (8 bytes), got %d" % len(eui))
    return eui


def _request(ctx, specs, data):
    return A.AccessRequest(A.gbcs_long_invoke_id(ctx.counter), b"", specs, data).encode()


def _boolean(value):
    """A-XDR boolean as RTDS 8.11 writes it: TRUE is 0xFF (any non-zero octet is TRUE,
    X.690 8.2.2; firmware.dlms.axdr writes 0x01, which the hub reads alike)."""
    return axdr.raw(b"\x03\xff" if value else b"\x03\x00")


class _DeviceLog(UseCase):
    def read_response(self, payload, ctx):
        """{"results": [(kind, result code)], "ok": every result success}."""
        try:
            response = A.decode_response(payload)
        except A.AccessError as e:
            raise UseCaseError("not an ACCESS response: %s" % e)
        results = [(r.kind, r.result) for r in response.results]
        return {"results": results, "ok": bool(results) and all(c == 0 for _, c in results),
                "long_invoke_id": response.long_invoke_id_and_priority}


@register
class CCS01(_DeviceLog):
    name = "CCS01"

    def build(self, params, ctx):
        eui = _eui(params)
        install_code = bytes(params.get("install_code", b""))
        if len(install_code) > chf.MAX_INSTALL_CODE:
            raise UseCaseError("install code of %d bytes (at most %d)"
                               % (len(install_code), chf.MAX_INSTALL_CODE))
        join_time = int(params.get("join_time", 0))
        if not 0 <= join_time <= MAX_JOIN_TIME:
            raise UseCaseError("join time %d does not fit long-unsigned" % join_time)
        device = (axdr.STRUCTURE, [(axdr.OCTET_STRING, eui),
                                   (axdr.ENUM, int(params.get("device_type", RTDS_DEVICE_TYPE))),
                                   (axdr.OCTET_STRING, install_code),
                                   (axdr.ENUM, int(params.get("extra", RTDS_EXTRA)))])
        specs = [A.RequestSpec.action(ZNC_CLASS, ZNC, chf.METHOD_REGISTER_DEVICE),
                 A.RequestSpec.set(ZNC_CLASS, ZNC, chf.ATTR_JOIN_TIMEOUT),
                 A.RequestSpec.set(ZNC_CLASS, ZNC, chf.ATTR_ENABLE_DISABLE_JOINING)]
        data = [device, (axdr.LONG_UNSIGNED, join_time),
                _boolean(params.get("joining", True))]
        return _request(ctx, specs, data)


@register
class CCS02(_DeviceLog):
    name = "CCS02"

    def build(self, params, ctx):
        spec = A.RequestSpec.action(ZNC_CLASS, ZNC, chf.METHOD_UNREGISTER_DEVICE)
        return _request(ctx, [spec], [(axdr.OCTET_STRING, _eui(params))])
