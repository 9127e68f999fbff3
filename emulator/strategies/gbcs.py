"""Hypothesis strategies for the GBCS envelope (GBCS v4 clause 7.2), GBZ payloads (7.3)
and the GB-HRGP tunnel frames that carry them over the HAN (10.2), valid and broken.

Parties. `parties()` is a test SMKI (`emulator.smki.TestSmki`) issued once per process
and cached: an ACB, a supplier, a rogue organisation whose keys no device trusts, and the
devices ESME_EUI and GSME_EUI. `parties().anchors()` are the trust anchors a device of
these tests holds and `parties().device_security(eui)` its `DeviceSecurity`, so a device
built from them obeys exactly the commands built here with the right keys.

Envelope:
- `gbcs_fields()` / `gbcs_messages()`: any well-formed envelope (fields as
  `firmware.gbcs.envelope.GbcsMessage` takes them / its bytes); MAC and signature are
  random bytes, so these parse but authenticate nothing.
- `unprotected_commands(device)`: `GbcsMessage`s of the use cases `device` ("ESME",
  "GSME") serves, payloads from the DCC-side builders (`emulator.usecases`) with drawn
  parameters, not yet signed or MAC'd; `protect(message)` signs it as the supplier when
  the use case is critical and MACs it as the ACB. `protected_commands(device)`: the two
  together, so every one verifies.
- Pools, for runs of thousands of cases: `command_pool(device, first_counter)` builds
  each use case with a few fixed parameter sets once per process; `pooled_commands`
  draws copies of them (unprotected), `pooled_protected_commands` protected ones.
- `wrong_mac_commands(...)`: (reason, command) with the right signature where there is
  one and a MAC made with a key the device does not share with the ACB, a flipped bit,
  or none. `wrong_signature_commands(...)`: critical use cases signed by a key not in the
  supplier's anchor, with a flipped bit, or unsigned; the ACB's MAC over it is right.
  Both take `commands=` (unprotected) to draw from a pool. `unknown_party_commands`:
  from the rogue party, signed with its key and MAC'd by the ACB.
- `mutated(bytes_strategy)`: one random mutation (may still decode).
  `tampered_commands(commands)`: bytes one mutation (bit flip, byte changed, inserted or
  deleted, truncation, bytes appended) away from a MAC'd command, never an encoding of
  the same command: the envelope parser or the MAC check refuses each one.
- `absurd_lengths(commands)`: a BER length (MAC header, other-information, payload)
  replaced by a value that cannot hold, or by a form GBCS does not use: the parser
  refuses each one. `malformed_gbcs_messages()` joins both with random bytes.

GBZ:
- `gbz_payloads()`: `firmware.gbcs.gbz.GbzPayload`s (plain and encrypted components,
  alerts, future-dated alerts) whose ZCL commands both GBZ decoders read.
- `mutated_gbz_payloads()`: one random mutation of a valid payload (may still decode).
- `malformed_gbz_payloads()`: mutations the GBZ decoder is guaranteed to refuse (profile
  id, reserved control bits, a component length past the end, a cut inside the last
  component, a component count above the components present, the last-flag moved).

Tunnel: `transfer_data()` (GET, GET-RESPONSE, PUT around protected commands) and
`malformed_transfer_data()` (unknown command, a GET with data, an empty PUT or
GET-RESPONSE without its count: the tunnel decoder refuses each one).
"""

import functools
import struct

from hypothesis import assume, strategies as st

from emulator import smki
from emulator.crypto import HostCrypto
from emulator.usecases import USE_CASE_BUILDERS, BuildContext
from firmware.gbcs import codes, envelope, gbz, security
from firmware.gbcs.anchors import TrustAnchors
from firmware.gbcs.device_security import DeviceSecurity
from firmware.han import tunnel
from firmware.zcl import frame as Z
from firmware.zcl import se

# EUI-64s as RTDS 4.5.0 (and the lab) give them to the same parties
ACB_EUI = bytes.fromhex("90B3D51F30000002")
SUPPLIER_EUI = bytes.fromhex("90B3D51F30010000")
ROGUE_EUI = bytes.fromhex("90B3D51F300F0000")
ESME_EUI = bytes.fromhex("00DB1234567890A0")
GSME_EUI = bytes.fromhex("00DB1234567890A1")

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, (1 << 64) - 1)
i32 = st.integers(-0x80000000, 0x7FFFFFFF)
eui64 = st.binary(min_size=8, max_size=8)
# 2015-01-01 .. 2035-01-01: dates the builders turn into COSEM / ZigBee / ASN.1 times
SECONDS = st.integers(1420070400, 2051222400)
# counters a test device has not seen: far above the ones a test accepts on purpose
FRESH_COUNTERS = st.integers(1 << 40, (1 << 63) - 1)


# -- the parties -------------------------------------------------------------------------

class GbcsParties:
    """The keys of one test SMKI, and what a device trusts and shares with them."""

    def __init__(self, seed=0):
        self.crypto = HostCrypto()
        self.pki = smki.TestSmki(seed)
        self.pki.organisation(ACB_EUI, smki.ROLE_ACB, "DCC ACB")
        self.pki.organisation(SUPPLIER_EUI, smki.ROLE_SUPPLIER, "SUPPLIER A")
        self.pki.organisation(ROGUE_EUI, smki.ROLE_SUPPLIER, "ROGUE")
        for eui in (ESME_EUI, GSME_EUI):
            self.pki.device(eui)

    def private(self, eui, usage):
        credentials = self.pki.organisations.get(eui) or self.pki.devices[eui]
        return credentials[usage].private_key

    def public(self, eui, usage):
        credentials = self.pki.organisations.get(eui) or self.pki.devices[eui]
        return credentials[usage].public_xy

    def anchors(self):
        """The supplier (management and prepayment cells) and the ACB; not the rogue."""
        anchors = TrustAnchors()
        for role, eui in ((codes.ROLE_SUPPLIER, SUPPLIER_EUI), (codes.ROLE_ACB, ACB_EUI)):
            anchors.set(role, codes.CELL_MANAGEMENT, eui, ds_public=self.public(eui, "ds"),
                        ka_public=self.public(eui, "ka"))
        anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER_EUI,
                    ka_public=self.public(SUPPLIER_EUI, "pp-ka"))
        return anchors

    def device_security(self, eui):
        return DeviceSecurity(eui, self.private(eui, "ds"), self.private(eui, "ka"),
                              self.crypto, self.anchors())

    def shared_secret(self, party, device):
        """Static-static ECDH between a party's KA key and a device's (cached)."""
        return self.crypto.ecdh(self.private(party, "ka"), self.public(device, "ka"))

    def sign(self, message, signer=SUPPLIER_EUI):
        return security.sign(self.crypto, self.private(signer, "ds"), message)

    def mac(self, message, party=ACB_EUI):
        return security.protect_mac(self.crypto, self.shared_secret(party, message.recipient),
                                    message)

    def verifies(self, message):
        """(signature, MAC) verdicts as the recipient device checks them."""
        signature = security.verify_signature(
            self.crypto, self.public(SUPPLIER_EUI, "ds"), message)
        mac = security.verify_mac(self.crypto, self.shared_secret(ACB_EUI, message.recipient),
                                  message)
        return signature, mac


@functools.lru_cache(maxsize=None)
def parties(seed=0):
    """The process's test parties for `seed` (issuing them costs a few certificates)."""
    return GbcsParties(seed)


# -- use-case parameters ---------------------------------------------------------------

@st.composite
def _window(draw):
    start = draw(SECONDS)
    return {"validity_start": start, "validity_end": start + draw(st.integers(0, 7200))}


@st.composite
def _date_range(draw):
    start = draw(SECONDS)
    return {"from": start, "to": start + draw(st.integers(0, 40 * 86400))}


def _change_supply():
    return st.fixed_dictionaries({"provider_id": u32, "issuer_event_id": u32,
                                  "implementation_date_time": st.sampled_from([0, 0xFFFFFFFF])})


USE_CASE_PARAMS = {
    "ESME": {
        "ECS17b": st.just({}),
        "ECS22b": _date_range(),
        "ECS21a": _date_range(),
        "ECS42": st.just({}),
        "ECS43": st.just({}),
        "ECS44": st.just({}),
        "ECS45": st.just({}),
        "ECS04b": st.fixed_dictionaries({"value": i32}),
        "ECS70": _window(),
    },
    "GSME": {
        "GCS13a": st.lists(st.sampled_from([0x0302, 0x0301, 0x0300, 0x0000]), min_size=1,
                           max_size=4, unique=True).map(lambda ids: {"attributes": ids}),
        "GCS33": st.just({}),
        "GCS17": st.builds(lambda start, count: {"from": start, "count": count}, SECONDS,
                           st.integers(1, 96)),
        "GCS32": _change_supply(),
        "GCS39": _change_supply(),
        "GCS28": _window(),
    },
}
DEVICE_EUI = {"ESME": ESME_EUI, "GSME": GSME_EUI}


def use_cases(device, critical=None):
    """Use-case names of `device` ("ESME", "GSME") this module builds (top-ups excluded:
    their counters are UTRN counters), optionally only the critical ones."""
    names = sorted(USE_CASE_PARAMS[device])
    if critical is not None:
        names = [n for n in names if codes.use_case(n)[1] == critical]
    return names


def build_command(name, params, counter, recipient, originator=SUPPLIER_EUI):
    """The unprotected command: the builder's payload in a CRA-1 envelope."""
    builder = USE_CASE_BUILDERS[name]
    ctx = BuildContext(counter, originator, recipient)
    return envelope.GbcsMessage(envelope.CRA_COMMAND, counter, originator, recipient,
                                builder.message_code, builder.build(params, ctx))


@st.composite
def unprotected_commands(draw, device="ESME", names=None, counters=None):
    """Commands of `device`'s use cases (`names`), built from drawn parameters, neither
    signed nor MAC'd yet; counters from `counters` (default FRESH_COUNTERS)."""
    name = draw(st.sampled_from(names or use_cases(device)))
    params = draw(USE_CASE_PARAMS[device][name])
    counter = draw(counters if counters is not None else FRESH_COUNTERS)
    return build_command(name, params, counter, DEVICE_EUI[device])


# a few parameter sets per use case for the pools (2024-05-01T00:00Z and a week later)
_T0 = 1714521600
POOL_PARAMS = {
    "ECS17b": [{}], "ECS42": [{}], "ECS43": [{}], "ECS44": [{}], "ECS45": [{}],
    "ECS22b": [{"from": _T0, "to": _T0 + 86400}, {"from": _T0 + 604800, "to": _T0}],
    "ECS21a": [{"from": _T0, "to": _T0 + 3 * 86400}],
    "ECS04b": [{"value": 0}, {"value": -2500}, {"value": 0x7FFFFFFF}],
    "ECS70": [{"validity_start": _T0, "validity_end": _T0 + 60},
              {"validity_start": _T0 + 604800, "validity_end": _T0 + 604800 + 3600}],
    "GCS13a": [{}, {"attributes": [0x0000]}], "GCS33": [{}],
    "GCS17": [{"from": _T0, "count": 48}, {"from": _T0 - 86400, "count": 1}],
    "GCS32": [{"provider_id": 7, "issuer_event_id": 0x2D000000}],
    "GCS39": [{"provider_id": 0, "issuer_event_id": 1, "implementation_date_time": 0xFFFFFFFF}],
    "GCS28": [{"validity_start": _T0, "validity_end": _T0 + 1800}],
}


@functools.lru_cache(maxsize=None)
def command_pool(device, first_counter=1 << 40):
    """Unprotected commands of every use case of `device` with the POOL_PARAMS, counters
    from `first_counter` up, built once per process (the builders cost a millisecond or
    two; hypothesis then only picks and alters)."""
    out = []
    for name in use_cases(device):
        for params in POOL_PARAMS[name]:
            out.append(build_command(name, params, first_counter + len(out), DEVICE_EUI[device]))
    return tuple(out)


def pooled_commands(device="ESME", names=None, first_counter=1 << 40):
    """A copy of one of `command_pool(device, first_counter)`, of the use cases `names`."""
    wanted = None if names is None else [codes.use_case(n)[0] for n in names]
    pool = [m for m in command_pool(device, first_counter)
            if wanted is None or m.message_code in wanted]
    return st.sampled_from(pool).map(copy_message)


@functools.lru_cache(maxsize=None)
def _protected_pool(device, first_counter):
    return tuple(protect(copy_message(m)) for m in command_pool(device, first_counter))


def pooled_protected_commands(device="ESME", first_counter=1 << 40):
    """A copy of one of `command_pool(device, first_counter)`, protected (signed and
    MAC'd once per process)."""
    return st.sampled_from(_protected_pool(device, first_counter)).map(copy_message)


def copy_message(message):
    return envelope.GbcsMessage(**vars(message))


def protect(message):
    """Sign (critical use cases) as the supplier and MAC as the ACB, in place."""
    p = parties()
    if codes.is_critical(message.message_code):
        p.sign(message)
    return p.mac(message)


def protected_commands(device="ESME", names=None, counters=None, commands=None):
    """Commands that verify: signed by the supplier when critical, MAC'd by the ACB.
    `commands` (unprotected GbcsMessages) defaults to `unprotected_commands`."""
    if commands is None:
        commands = unprotected_commands(device, names, counters)
    return commands.map(protect)


def _flip_bit(data, bit):
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@st.composite
def wrong_mac_commands(draw, device="ESME", names=None, counters=None, commands=None):
    """(reason, command): a right signature where there is one, and a MAC that does not
    verify ("rogue key", "flipped bit") or none at all ("no MAC")."""
    if commands is None:
        commands = unprotected_commands(device, names, counters)
    message = draw(commands)
    p = parties()
    if codes.is_critical(message.message_code):
        p.sign(message)
    reason = draw(st.sampled_from(["rogue key", "flipped bit", "no MAC"]))
    if reason == "rogue key":
        p.mac(message, party=ROGUE_EUI)
    elif reason == "flipped bit":
        p.mac(message)
        message.mac = _flip_bit(message.mac, draw(st.integers(0, 8 * envelope.MAC_LENGTH - 1)))
    return reason, message


@st.composite
def wrong_signature_commands(draw, device="ESME", names=None, counters=None, commands=None):
    """(reason, command) of a critical use case: the signature is by a key the supplier's
    anchor does not hold ("rogue key"), has a flipped bit, or is missing ("no
    signature"); the ACB's MAC over it is right. `commands` must be critical ones."""
    if commands is None:
        commands = unprotected_commands(device, names or use_cases(device, critical=True),
                                        counters)
    message = draw(commands)
    p = parties()
    reason = draw(st.sampled_from(["rogue key", "flipped bit", "no signature"]))
    if reason == "rogue key":
        p.sign(message, signer=ROGUE_EUI)
    elif reason == "flipped bit":
        p.sign(message)
        bit = draw(st.integers(0, 8 * envelope.SIGNATURE_LENGTH - 1))
        message.signature = _flip_bit(message.signature, bit)
    return reason, p.mac(message)


def unknown_party_commands(device="ESME", commands=None):
    """Commands from the rogue party (a supplier the device holds no anchor for), signed
    with its own key and MAC'd by the ACB: refused as from an unknown originator."""
    if commands is None:
        commands = unprotected_commands(device)
    return commands.map(_from_rogue)


def _from_rogue(message):
    message.originator = ROGUE_EUI
    p = parties()
    if codes.is_critical(message.message_code):
        p.sign(message, signer=ROGUE_EUI)
    return p.mac(message)


# -- well-formed envelopes of any content ----------------------------------------------

def gbcs_fields(max_payload=300):
    """Keyword arguments of a `GbcsMessage` that encodes: any CRA flag, counter, parties,
    date-time, supplementary fields, payload, signature field and MAC."""
    return st.fixed_dictionaries({
        "cra_flag": st.sampled_from([1, 2, 3]), "originator_counter": u64,
        "originator": eui64, "recipient": eui64, "message_code": u16,
        "payload": st.binary(max_size=max_payload),
        "date_time": st.none() | st.binary(min_size=12, max_size=12),
        "supplementary": st.none() | st.tuples(eui64, u64, st.sampled_from([b"", bytes(8)])),
        "signature": st.none() | st.binary(min_size=64, max_size=64),
        "signature_field": st.booleans(),
        "mac": st.none() | st.binary(min_size=12, max_size=12),
    }).map(_message_kwargs)


def _message_kwargs(f):
    supplementary = f.pop("supplementary")
    if supplementary is not None:
        f["supplementary_remote_party"], f["supplementary_remote_counter"], \
            f["other_info_tail"] = supplementary
    if not f["signature_field"]:
        f["signature"] = None
    f["mac_protected"] = f["mac"] is not None
    return f


def gbcs_messages(max_payload=300):
    return gbcs_fields(max_payload).map(lambda f: envelope.GbcsMessage(**f).encode())


# -- broken envelopes --------------------------------------------------------------------

def _any_commands():
    return st.one_of(pooled_protected_commands("ESME"), pooled_protected_commands("GSME"))


# (operation, packed bytes): position (3 bytes), a non-zero byte, then 1..8 bytes of tail;
# two draws per mutation, positions wrap around the data
_EDITS = st.tuples(st.sampled_from(["flip", "change", "insert", "delete", "truncate",
                                     "append"]), st.binary(min_size=5, max_size=12))


def apply_edit(data, edit):
    """`data` with one edit as `_EDITS` draws it; a changed byte is XORed with a non-zero
    byte, so it changes."""
    op, packed = edit
    position = int.from_bytes(packed[:3], "big")
    byte = packed[3] or 0x80
    raw = bytearray(data)
    if op == "flip" and raw:
        return _flip_bit(raw, position % (8 * len(raw)))
    if op == "change" and raw:
        raw[position % len(raw)] ^= byte
    elif op == "insert":
        raw.insert(position % (len(raw) + 1), byte)
    elif op == "delete" and raw:
        del raw[position % len(raw)]
    elif op == "truncate" and raw:
        del raw[position % len(raw):]
    else:
        raw.extend(packed[4:])
    return bytes(raw)


@st.composite
def mutated(draw, data):
    """Bytes from the strategy `data` with one mutation: a bit flipped, a byte changed,
    inserted or deleted, a truncation, or bytes appended (the result may still decode)."""
    return apply_edit(draw(data), draw(_EDITS))


def same_command(data, command):
    """True when `data` parses to `command` (another encoding of its lengths, which the
    MAC does not cover): the same command, not a tampered one."""
    try:
        return envelope.parse(data).encode() == command.encode()
    except envelope.GbcsError:
        return False


@st.composite
def tampered_commands(draw, commands=None):
    """Bytes one mutation away from a MAC'd command (from `commands`, GbcsMessages) that
    are not that command again: refused by the envelope parser or by the MAC check."""
    command = draw(commands if commands is not None else _any_commands())
    data = apply_edit(command.encode(), draw(_EDITS))
    assume(not same_command(data, command))
    return data


def length_fields(message):
    """Offsets in `message.encode()` of its BER lengths: the MAC header's (when MAC'd),
    the other-information's and the payload's."""
    at = 0
    out = {}
    if message.mac_protected:
        out["mac header"] = 7
        at = 7 + len(envelope.ber_length(len(message.body()) + 5 + envelope.MAC_LENGTH)) + 5
    at += 1 + 10 + 9 + 9 + (1 if message.date_time is None else 13)
    out["other information"] = at
    other = len(message.other_information())
    at += len(envelope.ber_length(other)) + other
    out["payload"] = at
    return out


_ABSURD = st.one_of(
    st.just(b"\x80"),                                     # indefinite: not in GBCS
    st.sampled_from([0x85, 0x88, 0xFF]).map(lambda b: bytes((b,))),
    st.builds(lambda n: b"\x84" + struct.pack(">I", n), st.integers(0x10000, 0xFFFFFFFF)),
    st.builds(lambda n: b"\x83" + n.to_bytes(3, "big"), st.integers(0x10000, 0xFFFFFF)),
)


@st.composite
def absurd_lengths(draw, commands=None):
    """A MAC'd command with one BER length replaced by a length no message of its size
    can hold (at least 64 KiB) or a form GBCS does not use: the parser refuses it."""
    command = draw(commands if commands is not None else _any_commands())
    data = command.encode()
    field = draw(st.sampled_from(sorted(length_fields(command).items())))[1]
    end = envelope.read_ber_length(data, field)[1]
    return data[:field] + draw(_ABSURD) + data[end:]


def malformed_gbcs_messages(commands=None):
    """Bytes no GBCS device may obey: tampered commands, absurd lengths, noise."""
    return st.one_of(tampered_commands(commands), absurd_lengths(commands),
                     st.binary(max_size=64),
                     st.binary(max_size=40).map(lambda b: b"\xdd\x00\x00\x00\x00\x00\x00" + b),
                     st.binary(max_size=40).map(lambda b: b"\xdf\x09" + b))


# -- GBZ ---------------------------------------------------------------------------------
# Module-level strategies, few draws per frame (fields come packed in one byte string):
# the GBZ layer runs ten thousand payloads.

_CLUSTERS = st.sampled_from([se.METERING, se.PREPAYMENT, 0x0700, 0x0707])


def _packed(fmt):
    """A tuple of integers for struct format `fmt`, drawn as one byte string."""
    size = struct.calcsize(fmt)
    return st.binary(min_size=size, max_size=size).map(lambda b: struct.unpack(fmt, b))


def _zcl(fc, tsn, command_id, payload):
    return Z.ZclFrame(fc, tsn, command_id, payload).encode()


def _se_frame(cluster, s2c, command_id, fc, names, fields_fmt, extra=None):
    """(cluster, frame) strategy of one Smart Energy command: tsn and `names` packed in
    `fields_fmt`, then `extra(values, drawn)` for the variable part when given."""
    def frame(drawn):
        values = drawn if extra is None else drawn[0]
        fields = dict(zip(names, values[1:]))
        if extra is not None:
            extra(fields, drawn[1])
        return cluster, _zcl(fc, values[0], command_id,
                             se.encode(cluster, s2c, command_id, fields))
    return frame


def _samples(fields, raw):
    fields["samples"] = [int.from_bytes(raw[i:i + 3], "big") for i in range(0, len(raw) - 2, 3)]
    fields["number_of_samples"] = len(fields["samples"])


def _top_up_code(fields, code):
    fields["topup_code"] = code


def _read(drawn):
    tsn, cluster, raw = drawn
    ids = struct.unpack("<%dH" % (len(raw) // 2), raw[:len(raw) // 2 * 2])
    return cluster, _zcl(0x00, tsn, Z.READ_ATTRIBUTES, Z.encode_read_attributes(ids))


def _attribute_record(drawn):
    """(attribute id, status, type, value) from a selector and packed bytes."""
    selector, attribute, value = drawn
    if selector == 0:
        return attribute, 0, 0x22, value & 0xFFFFFF
    if selector == 1:
        return attribute, 0, 0x25, value & 0xFFFFFFFFFFFF
    if selector == 2:
        return attribute, 0, 0x2B, (value & 0xFFFFFFFF) - (1 << 31)
    if selector == 3:
        return attribute, 0, 0x30, value & 0xFF
    return attribute, (0x86, 0x8B, 0xC0)[value % 3], None, None


def _read_response(drawn):
    tsn, cluster, records = drawn
    return cluster, _zcl(0x18, tsn, Z.READ_ATTRIBUTES_RESPONSE,
                         Z.encode_read_attributes_response(records))


def _default_response(drawn):
    tsn, cluster, command_id, status = drawn
    return cluster, _zcl(0x08, tsn, Z.DEFAULT_RESPONSE,
                         Z.encode_default_response(command_id, status))


def _opaque(drawn):
    fc, tsn, command_id, payload = drawn
    return 0x0700, _zcl(fc, tsn, command_id, payload)


_ZCL_FRAMES = st.one_of(
    st.tuples(u8, _CLUSTERS, st.binary(max_size=12)).map(_read),
    st.tuples(u8, _CLUSTERS, st.lists(
        st.tuples(st.integers(0, 4), u16, u64).map(_attribute_record), max_size=5)
    ).map(_read_response),
    st.tuples(u8, _CLUSTERS, u8, u8).map(_default_response),
    st.tuples(st.sampled_from([0x01, 0x09, 0x19]), u8, st.integers(0x0C, 0xFF),
              st.binary(max_size=40)).map(_opaque),
    _packed(">BHIBH").map(_se_frame(
        se.METERING, False, se.GET_SAMPLED_DATA, 0x01,
        ("sample_id", "earliest_sample_time", "sample_type", "number_of_samples"), ">BHIBH")),
    st.tuples(_packed(">BHIBH"), st.binary(max_size=60)).map(_se_frame(
        se.METERING, True, se.GET_SAMPLED_DATA_RESPONSE, 0x19,
        ("sample_id", "sample_start_time", "sample_type", "sample_request_interval"),
        ">BHIBH", _samples)),
    _packed(">BIIIIBB").map(_se_frame(
        se.METERING, False, se.CHANGE_SUPPLY, 0x01,
        ("provider_id", "issuer_event_id", "request_date_time", "implementation_date_time",
         "proposed_supply_status", "supply_control_bits"), ">BIIIIBB")),
    _packed(">BIIIB").map(_se_frame(
        se.METERING, True, se.SUPPLY_STATUS_RESPONSE, 0x09,
        ("provider_id", "issuer_event_id", "implementation_date_time", "supply_status"),
        ">BIIIB")),
    st.tuples(_packed(">BB"), st.binary(max_size=30)).map(_se_frame(
        se.PREPAYMENT, False, se.CONSUMER_TOP_UP, 0x01, ("originating_device",), ">BB",
        _top_up_code)),
    _packed(">BBiBi").map(_se_frame(
        se.PREPAYMENT, True, se.CONSUMER_TOP_UP_RESPONSE, 0x09,
        ("result_type", "top_up_value", "source_of_top_up", "credit_remaining"), ">BBiBi")),
)


def zcl_frames():
    """(cluster id, ZCL frame bytes): the general and Smart Energy commands GBZ carries
    (both GBZ decoders read their fields), or an opaque cluster command."""
    return _ZCL_FRAMES


def _plain(drawn):
    return gbz.GbzComponent(drawn[0], drawn[1])


def _dated(drawn):
    (cluster, frame), from_date_time = drawn
    return gbz.GbzComponent(cluster, frame, from_date_time)


def _encrypted(drawn):
    """The frame's header, a 2-byte additional header and ciphertext + tag (random)."""
    (cluster, frame), sealed = drawn
    split = Z.header_length(frame)
    return gbz.GbzComponent(cluster, frame[:split], None, sealed[:2],
                            gbz.ENCRYPTED_FIELD_HEADER + sealed[2:])


_COMPONENTS = st.one_of(
    _ZCL_FRAMES.map(_plain),
    st.tuples(_ZCL_FRAMES, u32).map(_dated),
    st.tuples(_ZCL_FRAMES, st.binary(min_size=2 + gbz.TAG_LENGTH, max_size=60)).map(_encrypted))


def gbz_components():
    """A plain component (optionally from-date-timed) or an encrypted one whose field is
    31 00000000 + ciphertext + tag (random: the layer does not open it)."""
    return _COMPONENTS


def _future_dated(drawn):
    code, stamp, (message_code, counter, cluster, fc, command_id) = drawn
    body = gbz.FutureDatedAlert(message_code, counter, cluster, fc, command_id)
    return gbz.GbzPayload(alert_code=code, time_stamp=stamp, future_dated=body)


_ALERT_CODES = st.integers(0x8000, 0xFFFF).filter(lambda c: c not in gbz.FUTURE_DATED_ALERTS)


def gbz_payloads(max_components=3):
    """Commands and responses (1..max components), alerts with components, and
    future-dated alerts."""
    return st.one_of(
        st.lists(_COMPONENTS, min_size=1, max_size=max_components).map(gbz.GbzPayload),
        st.tuples(st.lists(_COMPONENTS, max_size=2), _ALERT_CODES, u32).map(
            lambda t: gbz.GbzPayload(t[0], alert_code=t[1], time_stamp=t[2])),
        st.tuples(st.sampled_from(gbz.FUTURE_DATED_ALERTS), u32,
                  _packed(">HQHBB")).map(_future_dated))


def mutated_gbz_payloads(payloads=None):
    """One random mutation of a valid payload's bytes (it may still decode)."""
    payloads = payloads if payloads is not None else gbz_payloads()
    return mutated(payloads.map(gbz.GbzPayload.encode))


def _component_offsets(payload):
    """Offsets of each component's control byte in `payload.encode()`."""
    at = 3 + (6 if payload.is_alert else 0)
    out = []
    for i, component in enumerate(payload.components):
        out.append(at)
        at += len(component.encode(i == len(payload.components) - 1))
    return out


@st.composite
def malformed_gbz_payloads(draw, payloads=None):
    """Bytes the GBZ decoder is guaranteed to refuse, each derived from a command or
    response payload (1..4 components, no alert)."""
    payload = draw(payloads if payloads is not None else
                   gbz_payloads().filter(lambda p: p.components and not p.is_alert))
    data = bytearray(payload.encode())
    starts = _component_offsets(payload)
    fault = draw(st.sampled_from(["profile", "control", "length", "cut", "count", "last"]))
    if fault == "profile":
        data[0:2] = draw(st.binary(min_size=2, max_size=2).filter(lambda b: b != b"\x01\x09"))
    elif fault == "control":
        at = draw(st.sampled_from(starts))
        data[at] |= draw(st.sampled_from([0x04, 0x08, 0x20, 0x40, 0x80]))
    elif fault == "length":
        at = draw(st.sampled_from(starts))
        room = len(data) - at - 5       # what follows the header (< 64 KiB here)
        struct.pack_into(">H", data, at + 3, draw(st.integers(room + 1, 0xFFFF)))
    elif fault == "cut":
        data = data[:draw(st.integers(starts[-1], len(data) - 1))]
    elif fault == "count":
        data[2] = draw(st.integers(len(starts) + 1, 255))
    else:
        at = starts[-1]
        data[at] &= ~gbz.CONTROL_LAST & 0xFF
    return bytes(data)


# -- GB-HRGP tunnel ----------------------------------------------------------------------

@st.composite
def transfer_data(draw, messages=None):
    """(kind, remaining, GBCS message, frame bytes): whole TransferData payloads."""
    kind = draw(st.sampled_from([tunnel.GET, tunnel.GET_RESPONSE, tunnel.PUT]))
    if kind == tunnel.GET:
        return kind, None, b"", tunnel.get()
    message = draw(messages if messages is not None else
                   _any_commands().map(lambda m: m.encode()))
    if kind == tunnel.PUT:
        return kind, None, message, tunnel.put(message)
    remaining = draw(u8)
    if draw(st.integers(0, 4)) == 0:
        message = b""                   # the queue was empty
    return kind, remaining, message, tunnel.get_response(remaining, message)


def malformed_transfer_data():
    """TransferData payloads the tunnel decoder refuses."""
    return st.one_of(
        st.just(b""), st.just(b"\x02"), st.just(b"\x03"),
        st.binary(min_size=1, max_size=20).map(lambda b: b"\x01" + b),
        st.tuples(st.integers(0, 0xFF).filter(lambda k: k not in (1, 2, 3)),
                  st.binary(max_size=20)).map(lambda t: bytes((t[0],)) + t[1]))
