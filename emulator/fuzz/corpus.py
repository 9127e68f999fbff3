"""The seed corpus: a few dozen valid inputs per fuzz layer, made deterministically from
the project's own encoders and the GBCS reference vectors (tests/vectors/gbcs/), plus the
inputs of findings that were fixed (kept as regression seeds).

    python -m emulator.fuzz.corpus            # rewrite fuzz/corpus/<layer>/<sha1>

    corpus.seed("gbz")      # -> [bytes, ...] for one layer
    corpus.write_seeds(folder)

The files are committed; each is named by the SHA-1 of its bytes (as libFuzzer names
corpus files), so regenerating changes nothing unless an encoder's output changed.
"""

import hashlib
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
RTDS = REPO / "tests" / "vectors" / "gbcs" / "rtds-4.5.0"
CORPUS_DIR = REPO / "fuzz" / "corpus"
PER_LAYER = 40               # about; small enough to keep the whole corpus well under 1 MB
MAX_SEED = 4096              # bytes (the atheris harness's -max_len)

# Inputs that made a target fail, fixed since (a defect of a decoder or a device, or a
# rule of the target that was stricter than the specification): layer -> hex. Seeds, so
# every fuzzing run starts from them and the replay test holds the fix.
REGRESSIONS = {
    # Read Attributes responses with invalid (0xFF-length) octet strings, which zigpy
    # reads as 255 bytes: the one place the ZCL decoders may part
    "zcl": ["070008010117060041ff010040000050",
            "070008010117060041ff17060041ffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffff060041ff17060041ffffffffff"
            "ffffffffffffffffffffffff30ffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "ffff0041ff0142fa0101011706fa01010117060041ff17060041ff01500041ffff17060041ff0150"
            "0041fffffffffffffffffffffffffffffff7ffffffffffffffff0142fa0101011706fa0604410801"
            "0117060041ff17060041ff0142fa0101011706fa01010117060041ff17060041ff01500041ffff17"
            "060041ff01500041ff01011706044108010117060041ff0702080700290702080717060041ff0101"
            "170600ff",
            "070008010117060041ff17060041ffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "ffffff0142fa0101011706fa01ffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "ffffffffffffffffffffffffffffffffffffffff0142fa0101011706fa0101011706044108010117"
            "060041ff17060041ff0142fa0101011706fa01010117060041ff17060041ff01500041ffff170600"
            "41ff01500041ff01011706044108010117060041ff17060041ff0142fa0101011706fa0101011706"
            "0041ff17060041ff01500041ffff17060041ff01500041ff17060041ff0150"],
    # other-information length in a long form (83 000003) the short form would do: both
    # codecs read it as BER allows, and write the minimal form back
    "gbcs": ["df090200000000000003e80880db1234567890a0087eb38731800000100083000003e8080000"],
    # a Read Attributes response in GBZ with a character string that is not UTF-8:
    # zigpy gives it back as U+FFFD, and writes a character count as its length
    "gbz": ["010902000700002208000106030018000503004201ffffffffffff1c000303001801020300232400"
            "00000107020025082401130b080001060300180005030041ffffff100b0000ff41ffff0ac723e067"
            "3521e60e"],
    # an ACCESS response with a long-form count (81 00): read as A-XDR allows, written
    # back in the short form by both codecs
    "xdlms": ["da200003e900008100010200"],
    # gpTranslationTableClear (v12+), whose parameter list bellows gives as a tuple: the
    # virtual NCP's decoder raised AttributeError on it; getChildData on v6, whose reply
    # the NCP built as v7's struct (KeyError); getTransientKeyTableEntry on v7, answered
    # with v8's struct (KeyError); a request longer than an ASH DATA field, which the NCP
    # never sees and so cannot answer
    "ezsp": ["070207010b01", "01ff2fff8c4a08", "020a00ff006d00",
             "010100ff2e024fdbfffff75500000000003000000000000000000000000000000000000000000000"
             "00000000000000000000000000000000ffffffffffffff0500230000000000000504000117000000"
             "000005040001170000000000000000000000000000000000000000fcfffffff18e8e8ef1f1f10e0e"
             "0e0e080e0e0e0000000000000000"],
}


def seed(layer):
    """The seed inputs of `layer` (a name in `emulator.fuzz.targets.LAYERS`)."""
    makers = _MAKERS
    if layer not in makers:
        raise KeyError("no seeds for layer %r" % (layer,))
    out = []
    for data in list(makers[layer]()) + [bytes.fromhex(h) for h in REGRESSIONS.get(layer, ())]:
        data = bytes(data)
        if data not in out and len(data) <= MAX_SEED:
            out.append(data)
    return out


def write_seeds(folder=CORPUS_DIR, layers=None):
    """Rewrite folder/<layer>/<sha1> for each layer; -> {layer: count}."""
    folder = pathlib.Path(folder)
    counts = {}
    for layer in layers or sorted(_MAKERS):
        target = folder / layer
        target.mkdir(parents=True, exist_ok=True)
        wanted = {hashlib.sha1(data).hexdigest(): data for data in seed(layer)}
        for old in target.iterdir():
            if old.is_file() and old.name not in wanted:
                old.unlink()
        for name, data in wanted.items():
            (target / name).write_bytes(data)
        counts[layer] = len(wanted)
    return counts


def _spread(items, count=PER_LAYER):
    """`count` items taken evenly over the whole list (deterministic)."""
    items = list(items)
    if len(items) <= count:
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


# ---------------------------------------------------------------- reference vectors

def _rtds_messages():
    out = []
    for path in sorted(RTDS.glob("*/*.HEX")):
        out.append((path.name, bytes.fromhex(path.read_text().strip())))
    return out


def _rtds_payloads(prefixes):
    from firmware.gbcs import envelope
    out = []
    for _name, raw in _rtds_messages():
        payload = envelope.parse(raw).payload
        if payload[:len(prefixes[0])] in prefixes:
            out.append(payload)
    return out


# ---------------------------------------------------------------- DLMS

def _public_session():
    """The APDUs of a public-client session with an ESME core: (requests, responses)."""
    from emulator import profiles
    from emulator.codec import xdlms
    from emulator.fuzz.targets import CLOCK, _aarq, _get_request
    from firmware.board.meter import MeterCore
    from firmware import wrapper as fw_wrapper
    profile = profiles.load_profile(profiles.profile_path("esme-single-phase"))
    start = profile["clock"]["start"]
    core = MeterCore(profile, start)
    core.advance(start + 86400 + 600)
    sap = profile["clients"]["public"]["sap"]
    wport = profile["wrapper"]["wport"]
    core.open(1, "wrapper")

    def exchange(apdu):
        out = core.receive(1, fw_wrapper.encode_wpdu(sap, wport, apdu))
        return fw_wrapper.decode_wpdu(out)[2] if out else b""

    requests = [_aarq()]
    responses = [exchange(_aarq())]
    reads = [CLOCK, (1, bytes((0, 0, 42, 0, 0, 255)), 2), (3, bytes((1, 0, 1, 8, 0, 255)), 2),
             (3, bytes((1, 0, 1, 8, 0, 255)), 3), (15, bytes((0, 0, 40, 0, 0, 255)), 2),
             (15, bytes((0, 0, 40, 0, 0, 255)), 3), (7, bytes((1, 0, 99, 1, 0, 255)), 3),
             (7, bytes((1, 0, 99, 1, 0, 255)), 2), (70, bytes((0, 0, 96, 3, 10, 255)), 2),
             (1, bytes((0, 0, 96, 1, 0, 255)), 2), (8, bytes((0, 0, 1, 0, 0, 255)), 3)]
    for read in reads:
        request = _get_request(*read)
        requests.append(request)
        responses.append(exchange(request))
    specials = [
        ("SetRequestNormal", {"invoke_id_and_priority": 0xC1, "cosem_attribute_descriptor":
                              {"class_id": 8, "instance_id": CLOCK[1], "attribute_id": 2},
                              "access_selection": None,
                              "value": (9, bytes(12))}),
        ("ActionRequestNormal", {"invoke_id_and_priority": 0xC1, "cosem_method_descriptor":
                                 {"class_id": 70, "instance_id": bytes((0, 0, 96, 3, 10, 255)),
                                  "method_id": 1}, "method_invocation_parameters": (15, 0)}),
        ("GetRequestNext", {"invoke_id_and_priority": 0xC1, "block_number": 1}),
    ]
    for name, fields in specials:
        try:
            request = xdlms.encode_apdu(name, fields)
        except Exception:
            continue
        requests.append(request)
        responses.append(exchange(request))
    release = bytes.fromhex("6203800100")
    requests.append(release)
    responses.append(exchange(release))
    core.close(1)
    return requests, [r for r in responses if r]


def _axdr_values():
    from firmware.dlms import axdr as A
    values = [A.null_data(), A.boolean(True), A.integer(-5), A.long(-300), A.double_long(-7),
              A.long64(-(1 << 40)), A.unsigned(200), A.long_unsigned(60000),
              A.double_long_unsigned(1 << 31), A.long64_unsigned(1 << 63), A.enum(3),
              A.float32(1.5), A.float64(-2.25), A.octet_string(b"\x01\x02\x03"),
              A.visible_string(b"SMETS2"), A.utf8_string("£1".encode()), A.bcd(9),
              A.bit_string(11, b"\xa5\xe0"), A.date_time(bytes.fromhex("07e7010101000000ff800000")),
              A.date(bytes.fromhex("07e70101ff")), A.time(bytes.fromhex("0c000000")),
              A.structure([A.unsigned(1), A.octet_string(b"ab")]),
              A.array([A.long_unsigned(i) for i in range(3)]),
              A.array([A.structure([A.double_long_unsigned(i), A.octet_string(bytes(4))])
                       for i in range(9)])]
    encoded = [A.encode(v) for v in values]
    encoded.append(A.encode(A.compact_array(
        (A.STRUCTURE, [A.LONG_UNSIGNED, A.UNSIGNED]),
        [A.structure([A.long_unsigned(5), A.unsigned(6)]),
         A.structure([A.long_unsigned(7), A.unsigned(8)])])))
    return encoded


def _axdr_seeds():
    from firmware.dlms import apdu
    out = _axdr_values()
    for response in _public_session()[1]:
        try:
            decoded = apdu.decode_apdu(response)
        except apdu.ApduError:
            continue
        result = getattr(decoded, "result", None)
        data = getattr(result, "data", None)
        if data is not None:
            from firmware.dlms import axdr
            out.append(axdr.encode(data))
    return out


def _acse_seeds():
    """AARQs of every shape the clients send (contexts, mechanisms, initiate fields),
    each with the ESME's AARE, and releases."""
    from emulator import profiles
    from emulator.codec import acse
    from firmware.board.meter import MeterCore
    from firmware import wrapper as fw_wrapper
    profile = profiles.load_profile(profiles.profile_path("esme-single-phase"))
    core = MeterCore(profile, profile["clock"]["start"])
    wport = profile["wrapper"]["wport"]
    clients = profile["clients"]
    out = []
    variants = [(ctx, dlms, conformance, size) for ctx in ("60857405080101", "60857405080103")
                for dlms in (5, 6) for conformance in (0x001E1D, 0x00FFFF, 0x7FFFFF)
                for size in (0, 0x0400, 0xFFFF)]
    for n, (context, dlms, conformance, size) in enumerate(_spread(variants, 12)):
        client = ("public", "management")[n % 2]
        initiate = acse.encode_user_information({
            "pdu": "initiate_request", "dedicated_key": bytes(16) if n % 5 == 4 else None,
            "response_allowed": n % 3 != 2, "proposed_quality_of_service": None,
            "proposed_dlms_version_number": dlms, "proposed_conformance": conformance,
            "client_max_receive_pdu_size": size})
        fields = {"pdu": "aarq", "application_context_name": bytes.fromhex(context),
                  "user_information": initiate}
        if client == "management":
            password = clients["management"]["password"].encode()
            fields.update(sender_acse_requirements=True,
                          mechanism_name=bytes.fromhex("60857405080201"),
                          calling_authentication_value=password if n % 4 else b"wrong")
        aarq = acse.encode_acse(fields)
        out.append(aarq)
        core.open(n, "wrapper")
        reply = core.receive(n, fw_wrapper.encode_wpdu(clients[client]["sap"], wport, aarq))
        if reply:
            out.append(fw_wrapper.decode_wpdu(reply)[2])
            release = bytes.fromhex("6203800100")
            out.append(release)
            answer = core.receive(n, fw_wrapper.encode_wpdu(clients[client]["sap"], wport,
                                                            release))
            if answer:
                out.append(fw_wrapper.decode_wpdu(answer)[2])
        core.close(n)
    return out + [bytes.fromhex("6200"), bytes.fromhex("6300")]


def _xdlms_seeds():
    requests, responses = _public_session()
    out = [r for r in requests + responses if r[:1] not in (b"\x60", b"\x61", b"\x62", b"\x63")]
    out += _spread(_rtds_payloads((b"\xd9", b"\xda")), 16)
    return out


# ---------------------------------------------------------------- framings

def _hdlc_seeds():
    from emulator.fuzz.targets import LLC_REQUEST, _aarq, _get_request, CLOCK
    from firmware.hdlc import frame as F
    from firmware.hdlc.parameters import LinkParameters
    from firmware.hdlc.station import HdlcStation
    server, client = (1 << 7 | 0x10, 2), (0x10, 1)
    station = HdlcStation(on_apdu=lambda apdu, sap: b"\xc4\x01\xc1\x00\x09\x82\x01\x00"
                          + bytes(256))
    out = []

    def send(control, info=b"", destination=server, segmented=False):
        raw = F.HdlcFrame(control, destination, client, info, segmented).encode()
        out.append(raw)
        reply = station.receive(raw)
        if reply:
            out.append(reply)

    send(F.u_control(F.SNRM, True))
    send(F.u_control(F.SNRM, True), LinkParameters(128, 128, 1, 1).encode())
    send(F.i_control(0, 0, True), LLC_REQUEST + _aarq())
    send(F.i_control(1, 1, True), LLC_REQUEST + _get_request(*CLOCK))
    send(F.s_control(F.RR, 2, True))
    send(F.s_control(F.RR, 3, True))
    send(F.s_control(F.RNR, 3, True))
    send(F.s_control(F.REJ, 3, True))
    send(F.u_control(F.UI, False), b"\x01\x02")
    send(F.i_control(2, 3, False), LLC_REQUEST + b"\xc0", segmented=True)
    send(F.u_control(F.DISC, True))
    send(F.u_control(F.DISC, True))
    send(F.u_control(F.SNRM, True), destination=(0x7F, 1))
    send(F.u_control(F.SNRM, True), destination=(1 << 14 | 0x10, 4))
    return out


def _wrapper_seeds():
    from firmware import wrapper as W
    requests, responses = _public_session()
    out = [W.encode_wpdu(0x10, 1, apdu) for apdu in requests[:8]]
    out += [W.encode_wpdu(1, 0x10, apdu) for apdu in responses[:8]]
    out += [W.encode_wpdu(0x10, 1, b""), W.encode_wpdu(0xFFFF, 0xFFFF, b"\x00")]
    return out


# ---------------------------------------------------------------- GBCS

def _gbcs_seeds():
    return _spread([raw for _name, raw in _rtds_messages()]) + [_worked_example()]


def _worked_example():
    """The GBCS clause 18.4 ECS04b message (tests/vectors/gbcs/README.md)."""
    lines = (RTDS.parent / "README.md").read_text().splitlines()
    return bytes.fromhex(lines[lines.index("message:") + 1].strip())


def _gbz_seeds():
    return _spread(_rtds_payloads((b"\x01\x09",)))


def _tunnel_seeds():
    from firmware.han import tunnel as T
    messages = _spread([raw for name, raw in _rtds_messages() if "PRECOMMAND" not in name], 12)
    out = [T.get(), T.get_response(0, b""), T.get_response(3, messages[0][:40])]
    for raw in messages:
        out.append(T.put(raw))
        out.append(T.get_response(0, raw))
    long_frame = T.put(max(messages, key=len))
    out += T.segments(long_frame, 64)[:4]
    return out


def _zcl_seeds():
    from firmware.gbcs import gbz
    from firmware.zcl import frame as Z
    out = []
    for payload in _rtds_payloads((b"\x01\x09",)):
        try:
            decoded = gbz.decode(payload)
        except gbz.GbzError:
            continue
        for component in decoded.components:
            if not component.encrypted:
                out.append(component.cluster_id.to_bytes(2, "big") + component.frame)
    out = _spread(sorted(set(out)), 32)
    general = [Z.encode_header(0x00, 7, Z.READ_ATTRIBUTES) + Z.encode_read_attributes([0, 0x14]),
               Z.encode_header(0x08, 7, Z.READ_ATTRIBUTES_RESPONSE)
               + Z.encode_read_attributes_response([(0, 0, 0x25, 123456), (0x14, 0x86, None, None)]),
               Z.encode_header(0x18, 9, Z.DEFAULT_RESPONSE) + Z.encode_default_response(0x0B, 0),
               Z.encode_header(0x05, 1, 0x00, manufacturer_code=0x1234) + b"\x00"]
    return out + [b"\x07\x02" + frame for frame in general]


# ---------------------------------------------------------------- ZigBee NCP

def _ash_seeds():
    from emulator.ncp import ash as A
    bodies = [bytes((A.RST,)), bytes((A.RSTACK, 2, A.RESET_SOFTWARE)),
              bytes((A.ERROR, 2, 0x51)), A.ack_frame(1), A.ack_frame(7, not_ready=True),
              A.nak_frame(6), A.data_frame(0, 0, b"\x00\x00\x00\x04"),
              A.data_frame(1, 1, b"\x01\x00\x01\x00\x00", re_tx=True),
              A.data_frame(7, 3, bytes(range(40))), A.data_frame(2, 2, b"\x7e\x7d\x11\x13")]
    out = [b"\x1a" * 4 + A.encode(bodies[0])]
    out += [A.encode(body) for body in bodies]
    out.append(b"".join(A.encode(body) for body in bodies[:4]))
    return out


def _ezsp_seeds():
    from emulator.ncp import ezsp
    versions = ezsp.SUPPORTED_VERSIONS
    out = [bytes((versions.index(8),)) + b"\x00\x00\x00\x08"]      # legacy version command
    names = ("version", "getConfigurationValue", "setConfigurationValue", "getValue",
             "networkInit", "getEui64", "getNodeId", "networkState", "permitJoining",
             "startScan", "leaveNetwork", "getNetworkParameters", "setInitialSecurityState",
             "formNetwork", "sendUnicast", "setPolicy")
    for index, version in enumerate(versions):
        table = ezsp.CommandTable(version)
        for seq, name in enumerate(names):
            if not table.has(name) or (seq + index) % 3:
                continue
            params = _default_parameters(table.commands[name][1])
            if params is None:
                continue
            frame_id = table.id_of(name)
            if version >= 8:
                header = bytes((seq, 0x00, 0x01)) + frame_id.to_bytes(2, "little")
            else:
                header = bytes((seq, 0x00, 0xFF, 0x00, frame_id))
            out.append(bytes((index,)) + header + params)
    return out


def _default_parameters(schema):
    """Zero-valued parameters of a request, or None where a type has no zero."""
    try:
        if isinstance(schema, dict):
            return b"".join(type_(0).serialize() if issubclass(type_, int)
                            else type_().serialize() for type_ in schema.values())
        return schema(**{f.name: _zero(f.type) for f in schema.fields}).serialize()
    except Exception:
        return None


def _zero(type_):
    return type_(0) if issubclass(type_, int) else type_()


# ---------------------------------------------------------------- devices

def _esme_hdlc_seeds():
    from emulator.fuzz.targets import APDU_MODE
    requests, _ = _public_session()
    raw_link = [frame for frame in _hdlc_seeds()[::2]]
    return ([bytes((0,)) + frame for frame in raw_link]
            + [bytes((0,)) + b"".join(raw_link[:4])]
            + [bytes((APDU_MODE,)) + apdu for apdu in requests])


def _esme_gbcs_seeds():
    """Commands to the fuzzed ESME built as the lab's DCC builds them (signed by supplier
    A where critical, MAC'd by the ACB), and RTDS commands (other devices' keys)."""
    from emulator.lab import ACB_EUI, ESME_EUI, SUPPLIER_EUIS, Lab
    from emulator.usecases import USE_CASE_BUILDERS, BuildContext
    from firmware.gbcs import envelope, security
    lab = Lab(seed=0, wan="direct", record=False)
    supplier = SUPPLIER_EUIS["A"]
    device = lab.pki.devices[ESME_EUI]
    signer = lab.pki.organisations[supplier]["ds"].private_key
    shared = lab.crypto.ecdh(lab.pki.organisations[ACB_EUI]["ka"].private_key,
                             device["ka"].public_xy)
    out = []
    for counter, use_case in enumerate(("ECS17b", "ECS22b", "ECS21a", "ECS70", "ECS42",
                                        "ECS43", "ECS44", "ECS45", "CS01a", "ECS04b"), 1):
        builder = USE_CASE_BUILDERS[use_case]
        ctx = BuildContext(1000 + counter, supplier, ESME_EUI, lab.now, lab.crypto,
                           target_ka_public=device["ka"].public_xy)
        try:
            payload = builder.build({}, ctx)
        except Exception:
            continue               # a use case that needs parameters: not a seed
        message = envelope.GbcsMessage(envelope.CRA_COMMAND, 1000 + counter, supplier,
                                       ESME_EUI, builder.message_code, payload)
        if builder.critical:       # RFC 6979 signatures, so the seeds are reproducible
            security.sign(lab.crypto, signer, message)
        security.protect_mac(lab.crypto, shared, message)
        out.append(message.encode())
    commands = [raw for name, raw in _rtds_messages() if name.endswith("_COMMAND_GBCS.HEX")]
    return out + _spread(commands, 12)


_MAKERS = {
    "hdlc": _hdlc_seeds, "wrapper": _wrapper_seeds, "acse": _acse_seeds,
    "xdlms": _xdlms_seeds, "axdr": _axdr_seeds, "gbcs": _gbcs_seeds, "gbz": _gbz_seeds,
    "tunnel": _tunnel_seeds, "zcl": _zcl_seeds, "ash": _ash_seeds, "ezsp": _ezsp_seeds,
    "esme-hdlc": _esme_hdlc_seeds, "esme-gbcs": _esme_gbcs_seeds,
}


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    counts = write_seeds(CORPUS_DIR, args or None)
    for layer, count in counts.items():
        print("%-10s %3d seeds" % (layer, count))


if __name__ == "__main__":
    main()
