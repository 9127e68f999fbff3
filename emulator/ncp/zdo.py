"""The ZDO requests an EmberZNet stack answers by itself (ZigBee 05-3474 §2.4.3).

With ``CONFIG_APPLICATION_ZDO_FLAGS = APP_RECEIVES_SUPPORTED_ZDO_REQUESTS`` (bellows
sets it) the stack answers these and also hands the request to the host. Frames are
parsed and built with zigpy's ZDO schemas (``zigpy.zdo.types.CLUSTERS``): a ZDO frame is
``transaction sequence | fields`` (§2.4.2.8).
"""

from __future__ import annotations

import zigpy.types as zt
import zigpy.zdo.types as zdo

SUCCESS = zdo.Status.SUCCESS
NOT_ACTIVE = zdo.Status.NOT_ACTIVE          # Simple_Desc for an endpoint we do not have
DEVICE_NOT_FOUND = zdo.Status.DEVICE_NOT_FOUND

ANSWERED = {zdo.ZDOCmd.NWK_addr_req, zdo.ZDOCmd.IEEE_addr_req, zdo.ZDOCmd.Node_Desc_req,
            zdo.ZDOCmd.Active_EP_req, zdo.ZDOCmd.Simple_Desc_req, zdo.ZDOCmd.Match_Desc_req,
            zdo.ZDOCmd.Mgmt_Permit_Joining_req}


def parse(cluster: int, payload: bytes):
    """-> (tsn, [values]) for a ZDO command zigpy knows; ValueError otherwise."""
    try:
        command = zdo.ZDOCmd(cluster)
    except ValueError:
        raise ValueError(f"ZDO cluster 0x{cluster:04X} unknown") from None
    names, types = zdo.CLUSTERS[command]
    if not payload:
        raise ValueError("ZDO frame without a transaction sequence number")
    tsn, data = payload[0], payload[1:]
    values = []
    for type_ in types:
        value, data = type_.deserialize(data)
        values.append(value)
    return tsn, values


def build(command, tsn: int, *values) -> bytes:
    """A ZDO frame; None for an optional field left out (a response that failed)."""
    _names, types = zdo.CLUSTERS[command]
    out = bytearray((tsn,))
    for type_, value in zip(types, values):
        if value is None:
            continue
        out += value.serialize() if isinstance(value, zt.Struct) else type_(value).serialize()
    return bytes(out)


def node_descriptor(coordinator: bool, manufacturer_code: int) -> zdo.NodeDescriptor:
    return zdo.NodeDescriptor(
        logical_type=zdo.LogicalType.Coordinator if coordinator else zdo.LogicalType.Router,
        complex_descriptor_available=0, user_descriptor_available=0, reserved=0,
        aps_flags=0, frequency_band=zdo.NodeDescriptor.FrequencyBand.Freq2400MHz,
        mac_capability_flags=0x8E, manufacturer_code=manufacturer_code,
        maximum_buffer_size=82, maximum_incoming_transfer_size=128,
        server_mask=0x2C41 if coordinator else 0x2C40, maximum_outgoing_transfer_size=128,
        descriptor_capability_field=0)


def answer(ncp, cluster: int, payload: bytes, unicast: bool):
    """The response (cluster, bytes) the stack sends for a ZDO request, or None."""
    if cluster not in ANSWERED:
        return None
    try:
        tsn, v = parse(cluster, payload)
    except (ValueError, KeyError):
        return None                           # malformed request: the stack drops it
    me = ncp.network.node_id
    if cluster == zdo.ZDOCmd.Node_Desc_req:
        return 0x8002, build(zdo.ZDOCmd.Node_Desc_rsp, tsn, SUCCESS, me,
                             node_descriptor(ncp.network.node_id == 0, ncp.manufacturer_code))
    if cluster == zdo.ZDOCmd.Active_EP_req:
        return 0x8005, build(zdo.ZDOCmd.Active_EP_rsp, tsn, SUCCESS, me,
                             sorted(ncp.endpoints))
    if cluster == zdo.ZDOCmd.Simple_Desc_req:
        ep = v[1]
        if ep not in ncp.endpoints:
            return 0x8004, build(zdo.ZDOCmd.Simple_Desc_rsp, tsn, NOT_ACTIVE, me, None)
        profile, device, inputs, outputs = ncp.endpoints[ep]
        desc = zdo.SizePrefixedSimpleDescriptor(endpoint=ep, profile=profile, device_type=device,
                                    device_version=0, input_clusters=inputs,
                                    output_clusters=outputs)
        return 0x8004, build(zdo.ZDOCmd.Simple_Desc_rsp, tsn, SUCCESS, me, desc)
    if cluster == zdo.ZDOCmd.Match_Desc_req:
        # §2.4.3.1.7: endpoints with the profile and a wanted server (in) or client (out)
        # cluster; a broadcast request is answered only when something matches
        _nwk, profile, wanted_in, wanted_out = v
        matches = [ep for ep, (p, _dev, inputs, outputs) in sorted(ncp.endpoints.items())
                   if p == profile and (set(wanted_in) & set(inputs)
                                        or set(wanted_out) & set(outputs))]
        if not matches and not unicast:
            return None
        return 0x8006, build(zdo.ZDOCmd.Match_Desc_rsp, tsn, SUCCESS, me, matches)
    if cluster == zdo.ZDOCmd.NWK_addr_req:
        if v[0] != ncp.eui64:
            return None                       # only the device itself answers
        return 0x8000, build(zdo.ZDOCmd.NWK_addr_rsp, tsn, SUCCESS, zt.EUI64(ncp.eui64), me,
                             None, None, None)
    if cluster == zdo.ZDOCmd.IEEE_addr_req:
        return 0x8001, build(zdo.ZDOCmd.IEEE_addr_rsp, tsn, SUCCESS, zt.EUI64(ncp.eui64), me,
                             None, None, None)
    if cluster == zdo.ZDOCmd.Mgmt_Permit_Joining_req:
        ncp.permit_joining(v[0])
        if not unicast:
            return None                       # broadcasts are not answered (§2.4.3.3.7)
        return 0x8036, build(zdo.ZDOCmd.Mgmt_Permit_Joining_rsp, tsn, SUCCESS)
    return None


def device_annce(tsn: int, nwk: int, eui64, capability: int = 0x8E) -> bytes:
    return build(zdo.ZDOCmd.Device_annce, tsn, nwk, zt.EUI64(eui64), capability)
