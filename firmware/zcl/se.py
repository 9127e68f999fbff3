"""Smart Energy commands the GSME serves (ZigBee Smart Energy 1.4, Metering D.3 and
Prepayment D.7 clusters), described once as field tables and coded by one reader/writer.

Field names follow zigpy's definitions of the same commands, so the host codec
(`emulator/codec/gbz.py`, built on zigpy) and this one can be compared field by field.
"""

from firmware.zcl import types as T
from firmware.zcl.types import ZclError

METERING = 0x0702
PREPAYMENT = 0x0705

# Metering attributes (SE 1.4 D.3.2.2) read by GCS13a, and supply status
CURRENT_SUMMATION_DELIVERED = 0x0000
SUPPLY_STATUS = 0x0014
REMAINING_BATTERY_LIFE_DAYS = 0x0205
UNIT_OF_MEASURE = 0x0300
MULTIPLIER = 0x0301
DIVISOR = 0x0302
UNIT_M3 = 0x01                  # UnitofMeasure: m3 (binary)
UNIT_KWH = 0x00

# Metering commands: client -> server (D.3.2.3.1) and server -> client (D.3.2.4.1)
GET_SAMPLED_DATA = 0x08
CHANGE_SUPPLY = 0x0B
GET_SAMPLED_DATA_RESPONSE = 0x07
SUPPLY_STATUS_RESPONSE = 0x0C
SAMPLE_CONSUMPTION_DELIVERED = 0x00
SUPPLY_OFF = 0x00               # ProposedSupplyStatus / SupplyStatus (D.3.2.3.1.11)
SUPPLY_OFF_ARMED = 0x01
SUPPLY_ON = 0x02
ACKNOWLEDGE_REQUIRED = 0x01     # Supply Control Bits bit 0

# Prepayment commands (D.7.2.3.5, D.7.2.4.4)
CONSUMER_TOP_UP = 0x04
CONSUMER_TOP_UP_RESPONSE = 0x03
ORIGINATING_DEVICE_ESI = 0x00   # the Energy Service Interface: the remote (DCC) route
TOP_UP_ACCEPTED = 0x00
TOP_UP_REJECTED_INVALID = 0x01
TOP_UP_REJECTED_DUPLICATE = 0x02
TOP_UP_REJECTED_ERROR = 0x03
TOP_UP_REJECTED_MAX_CREDIT = 0x04


SAMPLES = "samples"             # uint24 list, its count in the field before it

# (cluster, server to client, command id) -> (name, ((field, type), ...))
COMMANDS = {
    (METERING, False, GET_SAMPLED_DATA): ("get_sampled_data", (
        ("sample_id", T.UINT16), ("earliest_sample_time", T.UTC_TIME),
        ("sample_type", T.UINT8), ("number_of_samples", T.UINT16))),
    (METERING, False, CHANGE_SUPPLY): ("change_supply", (
        ("provider_id", T.UINT32), ("issuer_event_id", T.UINT32),
        ("request_date_time", T.UTC_TIME), ("implementation_date_time", T.UTC_TIME),
        ("proposed_supply_status", T.UINT8), ("supply_control_bits", T.BITMAP8))),
    (METERING, True, GET_SAMPLED_DATA_RESPONSE): ("get_sampled_data_response", (
        ("sample_id", T.UINT16), ("sample_start_time", T.UTC_TIME),
        ("sample_type", T.UINT8), ("sample_request_interval", T.UINT16),
        ("number_of_samples", T.UINT16), ("samples", SAMPLES))),
    (METERING, True, SUPPLY_STATUS_RESPONSE): ("supply_status_response", (
        ("provider_id", T.UINT32), ("issuer_event_id", T.UINT32),
        ("implementation_date_time", T.UTC_TIME), ("supply_status", T.UINT8))),
    (PREPAYMENT, False, CONSUMER_TOP_UP): ("consumer_top_up", (
        ("originating_device", T.UINT8), ("topup_code", T.OCTET_STRING))),
    (PREPAYMENT, True, CONSUMER_TOP_UP_RESPONSE): ("consumer_top_up_response", (
        ("result_type", T.UINT8), ("top_up_value", T.INT32),
        ("source_of_top_up", T.UINT8), ("credit_remaining", T.INT32))),
}


def schema(cluster, server_to_client, command_id):
    entry = COMMANDS.get((cluster, bool(server_to_client), command_id))
    if entry is None:
        raise ZclError(None, "command 0x%02X of cluster 0x%04X not supported"
                       % (command_id, cluster))
    return entry


def encode(cluster, server_to_client, command_id, values):
    out = b""
    count = None
    for name, type_id in schema(cluster, server_to_client, command_id)[1]:
        if name not in values:
            raise ZclError(None, "field %s missing" % name)
        value = values[name]
        if type_id == SAMPLES:
            if len(value) != count:
                raise ZclError(None, "number_of_samples is not the count of samples")
            for sample in value:
                out += T.write_uint(sample, 3)
            continue
        out += T.write(type_id, value)
        count = value
    return out


def decode(cluster, server_to_client, command_id, payload):
    values = {}
    at = 0
    count = 0
    for name, type_id in schema(cluster, server_to_client, command_id)[1]:
        if type_id == SAMPLES:
            samples = []
            for _ in range(count):
                sample, at = T.read_uint(payload, at, 3)
                samples.append(sample)
            values[name] = samples
            continue
        value, at = T.read(type_id, payload, at)
        values[name] = value
        count = value
    if at != len(payload):
        raise ZclError(at, "%d unexpected bytes after the command" % (len(payload) - at))
    return values
