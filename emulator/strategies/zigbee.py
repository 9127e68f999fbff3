"""Hypothesis strategies for the ZigBee layers of the HAN, valid and broken: ZCL Smart
Energy frames, ASH frames and EZSP frames.

- ZCL (ZCL r7 2.4, ZSE 1.4 Annex D): frames built by zigpy for the SE clusters the
  emulator declares (`emulator.zigbee.clusters`: Price 0x0700, Metering 0x0702,
  Messaging 0x0703, Tunneling 0x0704, Prepayment 0x0705, Key Establishment 0x0800):
  Read/Write Attributes, Configure Reporting, Discover Attributes and Default Response,
  and every cluster command of each cluster in both directions, its arguments drawn
  from the command's zigpy schema. `zcl_se_frames()` gives valid frames,
  `malformed_zcl_se_frames()` frames derived from them by one mutation (truncated,
  command id the cluster does not define, a field of the wrong type, reserved frame
  control bits, a bit flip, bytes inserted or dropped, garbage), `zcl_se_traffic()`
  both. Each is a `ZclSample(cluster_id, data, fault)`; `fault` is None when valid.
- ASH (UG101): frames built by bellows' own framing (`bellows.ash`): DATA, ACK, NAK,
  RST, RSTACK and ERROR, CRC-CCITT, byte stuffing, DATA randomisation. `ash_frames()`
  gives bellows frame objects, `ash_wire_frames()` their bytes on the line,
  `malformed_ash_frames()` broken ones as `AshSample(data, fault)` (a flipped bit: a
  CRC mismatch certain to be caught; a stray escape; a truncation; CANCEL or SUBSTITUTE
  inside a frame; noise), `ash_traffic()` lists of chunks mixing both.
- EZSP (UG100): requests of one EZSP version (v8+ header: seq, frame control low,
  0x01, 16-bit frame id), the command and its parameters drawn from bellows' table of
  that version (`bellows/ezsp/v*/commands.py`). `ezsp_commands(version)` gives valid
  ones, `malformed_ezsp_frames(version)` broken ones (unknown frame id, truncated or
  overlong parameters, the response direction bit, a bad frame control high byte, a
  short header, garbage), both as `EzspSample(version, name, data, fault)`.

`values_of(type_)` draws a value of any zigpy or bellows type (integers, enums,
bitmaps, strings, lists, structs with optional fields): the argument generator above.
"""

from __future__ import annotations

import enum
from functools import lru_cache

import bellows.ash as bash
import bellows.types as bt
import zigpy.types as t
from bellows.ezsp import EZSP
from hypothesis import strategies as st
from zigpy.zcl import foundation

from emulator.zigbee import clusters as C

# Strategies are built once and drawn many times: hypothesis spends most of a case on
# making and labelling strategy objects, so positions and choices below are drawn from
# these constants and reduced modulo what they index.
BYTE = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
BOOL = st.booleans()
INDEX = st.integers(0, 0xFFFF)
FEW_BYTES = st.binary(min_size=1, max_size=4)
SHORT_BINARY = st.binary(max_size=16)


def pick(draw, choices):
    """One of `choices` (a sequence), drawn through a constant strategy."""
    return choices[draw(INDEX) % len(choices)]


# -- values of zigpy and bellows types ---------------------------------------------------

MAX_BYTES = 48                       # strings and lists kept short: ZCL rides in ~80 bytes
MAX_ITEMS = 3


@lru_cache(maxsize=None)
def values_of(type_, max_bytes=MAX_BYTES, max_items=MAX_ITEMS):
    """A strategy for values of the zigpy/bellows type `type_` that serialise."""
    if issubclass(type_, enum.Flag):
        return st.integers(0, (1 << type_._member_type_._bits) - 1).map(type_)
    if issubclass(type_, enum.Enum):
        if list(type_):
            return st.sampled_from(list(type_))
        bits = type_._member_type_._bits          # a bare enum8/enum16: any value
        return st.integers(0, (1 << bits) - 1).map(type_)
    if issubclass(type_, t.FixedIntType):
        bits = type_._bits
        low, high = ((-(1 << bits - 1), (1 << bits - 1) - 1) if type_._signed
                     else (0, (1 << bits) - 1))
        return st.integers(low, high).map(type_)
    if issubclass(type_, t.BaseFloat):
        return st.floats(width=32, allow_nan=False).map(type_)
    if issubclass(type_, t.CharacterString):
        limit = min(max_bytes, (1 << 8 * type_._prefix_length) - 2)
        return st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                       max_size=limit).map(type_)
    if issubclass(type_, (bytes, t.LVBytes, t.Bytes)):
        return st.binary(max_size=max_bytes).map(type_)
    if issubclass(type_, t.FixedList) and type_._item_type is t.uint8_t:
        # keys, EUI64s, certificates: one draw of bytes, not one per octet
        return st.binary(min_size=type_._length, max_size=type_._length).map(type_)
    if issubclass(type_, t.FixedList):
        item = values_of(type_._item_type, max_bytes, max_items)
        return st.lists(item, min_size=type_._length, max_size=type_._length).map(type_)
    if issubclass(type_, (t.List, t.LVList)):
        item = values_of(type_._item_type, max_bytes, max_items)
        return st.lists(item, max_size=max_items).map(type_)
    if issubclass(type_, t.Struct):
        return struct_fields(type_, max_bytes, max_items).map(lambda f: type_(**f))
    raise TypeError("no strategy for %r" % (type_,))


def _plain_int(type_):
    """An integer type any bit pattern of its size is a value of (not an enum)."""
    return issubclass(type_, t.FixedIntType) and not (
        issubclass(type_, enum.Enum) and not issubclass(type_, enum.Flag))


@lru_cache(maxsize=None)
def _int_block(types):
    """One draw of bytes for all the plain integer fields of a struct or schema: a
    draw per field costs hypothesis far more than the bytes do."""
    size = sum(ty._bits // 8 for ty in types if _plain_int(ty))
    return st.binary(min_size=size, max_size=size)


def _ints_from(block, types):
    """The plain integer values of `types`, in order, read from `block`."""
    values = []
    for ty in types:
        if _plain_int(ty):
            value, block = ty.deserialize(block)
            values.append(value)
    return iter(values)


@lru_cache(maxsize=None)
def struct_fields(struct, max_bytes=MAX_BYTES, max_items=MAX_ITEMS):
    """{field: value} for a zigpy Struct: optional fields are left out from the first
    one left out onwards (only a tail may be missing); a list whose length another
    field gives has that many items."""
    counts = _count_fields(struct)
    types = tuple(f.type for f in struct.fields if f.name not in counts)
    block = _int_block(types)
    count_values = st.integers(0, max_items)

    @st.composite
    def fields(draw):
        ints = _ints_from(draw(block), types)
        out = {}
        for field in struct.fields:
            if field.optional and draw(BOOL):
                break
            if field.name in counts:
                value = field.type(draw(count_values))
            elif field.length is not None:
                n = field.length(_Fields(out))
                item = values_of(field.type._item_type, max_bytes, max_items)
                value = field.type([draw(item) for _ in range(n)])
            elif _plain_int(field.type):
                value = next(ints)
            else:
                value = draw(values_of(field.type, max_bytes, max_items))
            out[field.name] = value
        return out
    return fields()


class _Fields:
    """Attribute access to drawn fields, for a zigpy `StructField(length=...)`."""

    def __init__(self, fields):
        self.__dict__.update(fields)


class _Probe:
    """Records which fields a zigpy `StructField(length=lambda s: s.count)` reads."""

    def __init__(self):
        self.read = set()

    def __getattr__(self, name):
        self.read.add(name)
        return 0


def _count_fields(struct):
    probe = _Probe()
    for field in struct.fields:
        if field.length is not None:
            field.length(probe)
    return probe.read


def serialize_fields(struct, fields):
    """The payload zigpy's `struct(**fields).serialize()` gives, field by field (the SE
    command schemas have no bit fields), without building the Struct."""
    return b"".join(field.type(fields[field.name]).serialize()
                    for field in struct.fields if field.name in fields)


def schema_arguments(schema, max_bytes=MAX_BYTES, max_items=MAX_ITEMS):
    """{name: value} for a bellows parameter dict (name -> type), in its order."""
    types = tuple(schema.values())
    block = _int_block(types)
    others = {name: values_of(ty, max_bytes, max_items) for name, ty in schema.items()
              if not _plain_int(ty)}

    @st.composite
    def arguments(draw):
        ints = _ints_from(draw(block), types)
        return {name: next(ints) if _plain_int(ty) else draw(others[name])
                for name, ty in schema.items()}
    return arguments()


# -- byte-level mutations (shared by the three layers) ----------------------------------

def flip_bit(draw, data):
    data = bytearray(data)
    bit = draw(INDEX) % (len(data) * 8)
    data[bit // 8] ^= 1 << bit % 8
    return bytes(data)


def truncate(draw, data, keep_at_least=0):
    """`data` cut short: at least `keep_at_least` bytes kept, at least one dropped."""
    room = max(1, len(data) - keep_at_least)
    return data[:keep_at_least + draw(INDEX) % room]


def insert_bytes(draw, data):
    at = draw(INDEX) % (len(data) + 1)
    return data[:at] + draw(FEW_BYTES) + data[at:]


def drop_bytes(draw, data):
    at = draw(INDEX) % len(data)
    return data[:at] + data[at + 1 + draw(INDEX) % 4:]


MUTATIONS = (flip_bit, truncate, insert_bytes, drop_bytes)


def mutate(draw, data):
    """`data` (non-empty) changed by one of MUTATIONS."""
    return pick(draw, MUTATIONS)(draw, data)


def mutated(strategy):
    """Byte strings from `strategy`, each changed by one mutation."""
    return strategy.flatmap(lambda data: st.composite(lambda draw: mutate(draw, data))())


# -- ZCL Smart Energy --------------------------------------------------------------------

SE_CLUSTERS = C.SE_CLUSTERS
C2S = foundation.Direction.Client_to_Server
S2C = foundation.Direction.Server_to_Client
G = foundation.GeneralCommand
STATUSES = st.sampled_from(list(foundation.Status))


class ZclSample:
    """One ZCL frame for `cluster_id`; `fault` names the mutation (None: valid)."""

    __slots__ = ("cluster_id", "data", "fault")

    def __init__(self, cluster_id, data, fault=None):
        self.cluster_id = cluster_id
        self.data = bytes(data)
        self.fault = fault

    def __repr__(self):
        return "ZclSample(0x%04X, %s, %s)" % (self.cluster_id, self.data.hex(), self.fault)


def _commands(cluster, direction):
    """The cluster commands a frame in `direction` carries (zigpy's tables)."""
    return cluster.server_commands if direction == C2S else cluster.client_commands


HEADER_CHOICES = st.integers(0, (1 << 26) - 1)


def zcl_header(draw, command_id, cluster_specific, direction):
    """zigpy's ZCLHeader for the command: any sequence number, manufacturer code or
    not, default response enabled or not (one draw, its bits split)."""
    bits = draw(HEADER_CHOICES)
    manufacturer = bits >> 10 if bits & 0x100 else None
    make = foundation.ZCLHeader.cluster if cluster_specific else foundation.ZCLHeader.general
    hdr = make(bits & 0xFF, command_id, manufacturer=manufacturer, direction=direction)
    if bits & 0x200:
        hdr.frame_control = hdr.frame_control.replace(disable_default_response=True)
    return hdr


def _general(general_id, **fields):
    return foundation.GENERAL_COMMANDS[general_id].schema(**fields)


@lru_cache(maxsize=None)
def _attribute_ids(cluster):
    if not cluster.attributes:
        return U16
    return st.one_of(st.sampled_from(sorted(cluster.attributes)), U16)


@lru_cache(maxsize=None)
def attribute_values(cluster):
    """(attribute id, TypeValue) of one of the cluster's attributes, of its own type."""
    by_id = {a: values_of(d.type).map(lambda v, d=d: (d.id, foundation.TypeValue(
        type=d.zcl_type, value=v))) for a, d in cluster.attributes.items()}
    return st.one_of([by_id[a] for a in sorted(by_id)])


@lru_cache(maxsize=None)
def reporting_configs(cluster):
    @st.composite
    def configs(draw):
        config = foundation.AttributeReportingConfig()
        config.direction = foundation.ReportingDirection.SendReports
        definition = pick(draw, sorted(cluster.attributes.values(), key=lambda d: d.id))
        config.attrid = definition.id
        config.datatype = definition.zcl_type
        config.min_interval = draw(U16)
        config.max_interval = draw(U16)
        config.reportable_change = 0         # serialised for analog types only
        data_type = foundation.DataType.from_type_id(definition.zcl_type)
        if data_type.type_class == foundation.DataClass.Analog:
            config.reportable_change = draw(values_of(definition.type))
        return config
    return configs()


def _records(pairs, record=foundation.Attribute):
    return [record(attrid=a, value=v) for a, v in pairs]


_DEFAULT_RESPONSES = st.tuples(BYTE, STATUSES).map(
    lambda d: (G.Default_Response, _general(G.Default_Response, command_id=d[0],
                                            status=d[1])))


@lru_cache(maxsize=None)
def general_requests(cluster):
    """(command id, command) of the profile-wide requests a client sends (ZCL r7 2.5)."""
    ids = st.lists(_attribute_ids(cluster), max_size=8)
    choices = [
        ids.map(lambda a: (G.Read_Attributes, _general(G.Read_Attributes, attribute_ids=a))),
        st.tuples(U16, BYTE).map(
            lambda d: (G.Discover_Attributes,
                       _general(G.Discover_Attributes, start_attribute_id=d[0],
                                max_attribute_ids=d[1]))),
        _DEFAULT_RESPONSES]
    if cluster.attributes:
        writes = st.lists(attribute_values(cluster), min_size=1, max_size=3).map(_records)
        choices += [
            st.tuples(st.sampled_from([G.Write_Attributes, G.Write_Attributes_Undivided,
                                       G.Write_Attributes_No_Response]), writes).map(
                lambda c: (c[0], _general(c[0], attributes=c[1]))),
            st.lists(reporting_configs(cluster), min_size=1, max_size=3).map(
                lambda r: (G.Configure_Reporting,
                           _general(G.Configure_Reporting, config_records=r)))]
    return st.one_of(choices)


def _read_record(pair_and_found):
    (attrid, value), found = pair_and_found
    if found:
        return foundation.ReadAttributeRecord(attrid=attrid, status=foundation.Status.SUCCESS,
                                              value=value)
    return foundation.ReadAttributeRecord(attrid=attrid,
                                          status=foundation.Status.UNSUPPORTED_ATTRIBUTE)


@lru_cache(maxsize=None)
def general_responses(cluster):
    """(command id, command) of the profile-wide frames a server sends."""
    if not cluster.attributes:
        return _DEFAULT_RESPONSES
    records = st.lists(st.tuples(attribute_values(cluster), BOOL).map(_read_record),
                       max_size=3)
    reports = st.lists(attribute_values(cluster), min_size=1, max_size=3).map(_records)
    return st.one_of(
        records.map(lambda r: (G.Read_Attributes_rsp,
                               _general(G.Read_Attributes_rsp, status_records=r))),
        reports.map(lambda r: (G.Report_Attributes,
                               _general(G.Report_Attributes, attribute_reports=r))),
        _DEFAULT_RESPONSES)


class _Payload:
    """A cluster command's payload serialised field by field (see serialize_fields)."""

    def __init__(self, data):
        self.data = data

    def serialize(self):
        return self.data


@lru_cache(maxsize=None)
def cluster_commands(cluster, direction):
    """(command id, payload) of one of the cluster's own commands in `direction`,
    arguments drawn from the command's zigpy schema."""
    table = _commands(cluster, direction)
    return st.one_of([
        struct_fields(table[cid].schema).map(
            lambda f, cid=cid: (cid, _Payload(serialize_fields(table[cid].schema, f))))
        for cid in sorted(table)])


@lru_cache(maxsize=None)
def _commands_of(cluster, direction):
    """(command id, command, cluster-specific) in `direction`."""
    general = general_requests(cluster) if direction == C2S else general_responses(cluster)
    choices = [general.map(lambda c: c + (False,))]
    if _commands(cluster, direction):
        choices.append(cluster_commands(cluster, direction).map(lambda c: c + (True,)))
    return st.one_of(choices)


@lru_cache(maxsize=None)
def zcl_se_frames(clusters=SE_CLUSTERS, directions=(C2S, S2C)):
    """A valid ZCL frame of an SE cluster (general or cluster-specific, either way)."""
    pairs = st.sampled_from([(c, d) for c in clusters for d in directions])

    @st.composite
    def frames(draw):
        cluster, direction = draw(pairs)
        command_id, command, specific = draw(_commands_of(cluster, direction))
        hdr = zcl_header(draw, command_id, specific, direction)
        return ZclSample(cluster.cluster_id, hdr.serialize() + command.serialize())
    return frames()


_WRONG_TYPES = (t.uint8_t, t.uint16_t, t.uint32_t, t.uint48_t, t.LVBytes, t.Bool)


def _wrong_type(draw, cluster, direction):
    """A cluster command with one field serialised as another type (a short or long
    integer, a string where a number belongs...)."""
    table = _commands(cluster, direction)
    command_id = pick(draw, sorted(table))
    fields = [f for f in table[command_id].schema.fields if not f.optional]
    if not fields:
        return None
    wrong = draw(INDEX) % len(fields)
    other = pick(draw, [ty for ty in _WRONG_TYPES if not issubclass(fields[wrong].type, ty)])
    payload = b""
    for i, field in enumerate(fields):
        payload += draw(values_of(other if i == wrong else field.type)).serialize()
    hdr = zcl_header(draw, command_id, True, direction)
    return ZclSample(cluster.cluster_id, hdr.serialize() + payload, "wrong type")


@lru_cache(maxsize=None)
def _unknown_ids(cluster, direction, specific):
    known = _commands(cluster, direction) if specific else {int(c) for c in G}
    return tuple(c for c in range(256) if c not in known)


def _unknown_command(draw, cluster, direction):
    specific = draw(BOOL)
    command_id = pick(draw, _unknown_ids(cluster, direction, specific))
    hdr = zcl_header(draw, command_id, specific, direction)
    return ZclSample(cluster.cluster_id, hdr.serialize() + draw(SHORT_BINARY),
                     "unknown command")


def _reserved_bits(sample, draw):
    data = bytearray(sample.data)
    data[0] |= (1 + draw(INDEX) % 7) << 5 if draw(BOOL) else 0x03
    return bytes(data)


@lru_cache(maxsize=None)
def malformed_zcl_se_frames(clusters=SE_CLUSTERS, directions=(C2S, S2C)):
    """ZCL frames broken by one mutation of a valid one. A mutation may still give a
    valid frame (a flipped bit in a value); `fault` says what was done, not what a
    decoder must say: decide that from zigpy's reading of the bytes."""
    valid = zcl_se_frames(clusters, directions)
    pairs = [(c, d) for c in clusters for d in directions]
    with_commands = [(c, d) for c, d in pairs if _commands(c, d)]
    faults = ("truncated", "unknown command", "wrong type", "reserved frame control",
              "mutated", "garbage")

    @st.composite
    def frames(draw):
        fault = pick(draw, faults)
        if fault == "unknown command":
            return _unknown_command(draw, *pick(draw, pairs))
        if fault == "wrong type":
            return _wrong_type(draw, *pick(draw, with_commands))
        if fault == "garbage":
            return ZclSample(pick(draw, clusters).cluster_id, draw(GARBAGE), fault)
        sample = draw(valid)
        if fault == "truncated":
            data = truncate(draw, sample.data)
        elif fault == "reserved frame control":
            data = _reserved_bits(sample, draw)
        else:
            data = mutate(draw, sample.data)
        return ZclSample(sample.cluster_id, data, fault)
    return frames().filter(lambda s: s is not None)


GARBAGE = st.binary(max_size=64)


@lru_cache(maxsize=None)
def zcl_se_traffic(clusters=SE_CLUSTERS, directions=(C2S, S2C)):
    return st.one_of(zcl_se_frames(clusters, directions),
                     malformed_zcl_se_frames(clusters, directions))


# -- ASH (UG101) ---------------------------------------------------------------------------

FLAG = 0x7E
ESCAPE = 0x7D
CANCEL = 0x1A
SUBSTITUTE = 0x18
RESERVED = frozenset((FLAG, ESCAPE, 0x11, 0x13, SUBSTITUTE, CANCEL))
SEQUENCE = st.integers(0, 7)
EZSP_PAYLOADS = st.binary(min_size=1, max_size=128)
# bytes that, after an escape, unescape to no reserved byte (and are not reserved)
NOT_ESCAPABLE = tuple(b for b in range(256) if b ^ 0x20 not in RESERVED and b not in RESERVED)


class AshSample:
    """Bytes for an ASH receiver; `fault` names how they were broken (None: valid)."""

    __slots__ = ("data", "fault")

    def __init__(self, data, fault=None):
        self.data = bytes(data)
        self.fault = fault

    def __repr__(self):
        return "AshSample(%s, %s)" % (self.data.hex(), self.fault)


@lru_cache(maxsize=None)
def data_frames(payloads=EZSP_PAYLOADS):
    return st.builds(bash.DataFrame, frm_num=SEQUENCE, re_tx=BOOL, ack_num=SEQUENCE,
                     ezsp_frame=payloads)


@lru_cache(maxsize=None)
def ash_frames(payloads=EZSP_PAYLOADS):
    """A bellows frame object of any ASH kind (UG101 §3)."""
    reset_codes = st.sampled_from(list(bt.NcpResetCode))
    return st.one_of(
        data_frames(payloads),
        st.builds(bash.AckFrame, res=st.just(0), ncp_ready=BOOL, ack_num=SEQUENCE),
        st.builds(bash.NakFrame, res=st.just(0), ncp_ready=BOOL, ack_num=SEQUENCE),
        st.just(bash.RstFrame()),
        st.builds(bash.RStackFrame, version=st.just(2), reset_code=reset_codes),
        st.builds(bash.ErrorFrame, version=st.just(2), reset_code=reset_codes))


def wire(frame) -> bytes:
    """A bellows frame as it goes on the line: CRC, stuffed, flag (bellows' framing)."""
    return stuffed(frame.to_bytes()) + bytes((FLAG,))


def stuffed(raw: bytes) -> bytes:
    return bytes(bash.AshProtocol._stuff_bytes(raw))


@lru_cache(maxsize=None)
def ash_wire_frames(payloads=EZSP_PAYLOADS):
    return ash_frames(payloads).map(lambda f: AshSample(wire(f)))


ASH_FAULTS = ("bad crc", "stray escape", "truncated", "cancel", "substitute",
              "ends in escape", "noise")


def _broken_ash(draw, fault, frame):
    """`frame` (a bellows frame) on the line, broken as `fault` says."""
    if fault == "bad crc":
        # one bit flipped before stuffing: CRC-CCITT catches every single-bit error
        return stuffed(flip_bit(draw, frame.to_bytes())) + bytes((FLAG,))
    body = wire(frame)[:-1]
    at = draw(INDEX) % (len(body) + 1)
    if fault == "stray escape":
        return body[:at] + bytes((ESCAPE, pick(draw, NOT_ESCAPABLE))) + body[at:] + b"\x7e"
    if fault == "truncated":
        return truncate(draw, body, keep_at_least=1) + bytes((FLAG,))
    if fault in ("cancel", "substitute"):
        byte = CANCEL if fault == "cancel" else SUBSTITUTE
        return body[:at] + bytes((byte,)) + body[at:] + bytes((FLAG,))
    return body + bytes((ESCAPE, FLAG))                   # ends in escape


@lru_cache(maxsize=None)
def malformed_ash_frames(payloads=EZSP_PAYLOADS):
    """Broken frames: `bad crc`, `stray escape` and `ends in escape` can never decode;
    a `truncated` frame almost never does; `cancel`/`substitute` put the receiver's
    line discipline to work (the frame in progress is dropped); `noise` is noise."""
    frames = ash_frames(payloads)

    @st.composite
    def broken(draw):
        fault = pick(draw, ASH_FAULTS)
        if fault == "noise":
            return AshSample(draw(GARBAGE.filter(bool)), fault)
        return AshSample(_broken_ash(draw, fault, draw(frames)), fault)
    return broken()


@lru_cache(maxsize=None)
def ash_traffic(payloads=EZSP_PAYLOADS, max_frames=6):
    """What a host's line might carry: valid and broken frames and noise in a row."""
    return st.lists(st.one_of(ash_wire_frames(payloads), malformed_ash_frames(payloads)),
                    min_size=1, max_size=max_frames)


# -- EZSP (UG100) ---------------------------------------------------------------------------

SERVED_VERSIONS = (8, 13, 18)        # the versions the virtual NCP is tested with
FC_HI_V8 = 0x01
FC_RESPONSE = 0x80


class EzspSample:
    """An EZSP request frame for `version`; `name` the command (None if unknown),
    `fault` the mutation (None: valid)."""

    __slots__ = ("version", "name", "data", "fault")

    def __init__(self, version, name, data, fault=None):
        self.version = version
        self.name = name
        self.data = bytes(data)
        self.fault = fault

    def __repr__(self):
        return "EzspSample(v%d, %s, %s, %s)" % (self.version, self.name, self.data.hex(),
                                                self.fault)


def ezsp_table(version):
    """bellows' commands of `version`: name -> (frame id, request schema, reply schema)."""
    return EZSP._BY_VERSION[version].COMMANDS


def ezsp_header(seq, frame_id, version, fc_lo=0x00):
    """Request header (UG100 §3): the v8+ layout, or v5-v7's extended one."""
    if version >= 8:
        return bytes((seq, fc_lo, FC_HI_V8)) + frame_id.to_bytes(2, "little")
    return bytes((seq, fc_lo, 0xFF, 0x00, frame_id))


def _dict_schema(name, version):
    schema = ezsp_table(version)[name][1]
    return schema if isinstance(schema, dict) else None


@lru_cache(maxsize=None)
def command_names(version):
    """Commands whose request parameters bellows describes field by field."""
    return tuple(sorted(n for n in ezsp_table(version)
                        if _dict_schema(n, version) is not None))


def encode_request(seq, name, args, version):
    frame_id, schema, _ = ezsp_table(version)[name]
    return ezsp_header(seq, frame_id, version) + bt.serialize_dict((), args, schema)


@lru_cache(maxsize=None)
def ezsp_commands(version, names=None):
    """A valid request of `version`, its arguments drawn from bellows' schema."""
    per_name = [schema_arguments(_dict_schema(n, version)).map(lambda a, n=n: (n, a))
                for n in (names or command_names(version))]
    requests = st.tuples(st.one_of(per_name), BYTE)
    return requests.map(lambda r: EzspSample(
        version, r[0][0], encode_request(r[1], r[0][0], r[0][1], version)))


@lru_cache(maxsize=None)
def _unknown_frame_ids(version):
    known = {cmd[0] for cmd in ezsp_table(version).values()}
    return [i for i in range(0x10000 if version >= 8 else 0x100) if i not in known]


@lru_cache(maxsize=None)
def _commands_with_parameters(version):
    return tuple(n for n in command_names(version) if _dict_schema(n, version))


EZSP_FAULTS = ("unknown frame id", "truncated", "trailing bytes", "response direction",
               "frame control high", "short header", "mutated")
_NOT_FC_HI = tuple(b for b in range(256) if b not in (FC_HI_V8, 0xFF, 0x00))


def _broken_ezsp(draw, version, fault):
    if fault == "unknown frame id":
        frame_id = pick(draw, _unknown_frame_ids(version))
        return None, ezsp_header(draw(BYTE), frame_id, version) + draw(SHORT_BINARY)
    if fault == "short header":
        return None, draw(SHORT_BINARY)[:2]
    if fault == "truncated":
        sample = draw(ezsp_commands(version, _commands_with_parameters(version)))
        start = len(ezsp_header(0, 0, version))
        return sample.name, truncate(draw, sample.data, keep_at_least=start)
    sample = draw(ezsp_commands(version))
    data = bytearray(sample.data)
    if fault == "trailing bytes":
        data += draw(FEW_BYTES)
    elif fault == "response direction":
        data[1] |= FC_RESPONSE
    elif fault == "frame control high":
        data[2] = pick(draw, _NOT_FC_HI)
    else:
        data = mutate(draw, bytes(data))
    return sample.name, bytes(data)


@lru_cache(maxsize=None)
def malformed_ezsp_frames(version):
    """EZSP requests broken by one mutation. `unknown frame id`, `response direction`,
    `frame control high` and `short header` can never decode; `truncated` decodes only
    where bellows' schema ends in a list it reads to the end; `mutated` may decode (a
    flipped bit in a value)."""
    @st.composite
    def broken(draw):
        fault = pick(draw, EZSP_FAULTS)
        name, data = _broken_ezsp(draw, version, fault)
        return EzspSample(version, name, data, fault)
    return broken()


@lru_cache(maxsize=None)
def ezsp_traffic(version):
    return st.one_of(ezsp_commands(version), malformed_ezsp_frames(version))
