"""Fuzz cases for a device under test, generated deterministically from a seed.

A `Case` is what the DUT fuzzer sends once: its layer, how it is sent (`action`), the
bytes and what must come back (`expect`):

    raw    bytes straight onto the open byte stream (the HDLC layer)
    wpdu   bytes onto a new wrapper connection (the wrapper layer: a WPDU that never
           completes must not swallow the next case)
    aarq   one APDU on a newly opened link, before any association (the ACSE layer)
    apdu   one APDU on the open association (the xDLMS and A-XDR layers)
    gbcs   one GBCS message to the DUT's own ESME (the GBCS layer: the micropython
           core standing in for the lab's ESME); mutations of commands the lab's
           head-end and DCC built for it, recorded on the way (`Context.gbcs_commands`)

    expect ANSWER   the DUT must answer (a polled command addressed to it; any APDU in
                    valid framing: principle 6, the DUT answers with its protocol's error)
    expect SILENCE  the DUT must not answer (a frame no good station takes for its own)
    expect ANY      either

The cases come from the project's hypothesis strategies (`emulator.strategies`), drawn
with a seeded data source (`draw`), and from seeded byte-level mutations of valid
frames built with the host codecs (`mutate`: bit flip, truncation, insertion,
deletion, length-field abuse). `cases(layer, context, seed)` is an endless, repeatable
stream for one layer.
"""

import random

from hypothesis import strategies as st
from hypothesis.control import BuildContext
from hypothesis.errors import StopTest
from hypothesis.internal.conjecture.data import ConjectureData

from emulator.codec import acse as acse_codec
from emulator.codec import axdr as axdr_codec
from emulator.codec import hdlc as hdlc_codec
from emulator.codec import wrapper as wrapper_codec
from emulator.codec import xdlms as xdlms_codec
from emulator.strategies import axdr as axdr_strategies
from emulator.strategies import gbcs as gbcs_strategies
from emulator.strategies import hdlc as hdlc_strategies
from emulator.strategies import xdlms as xdlms_strategies

DRAW_ATTEMPTS = 20
MAX_CHOICES = 300          # a bound on one drawn value, as hypothesis' own buffer is
ANSWER = "answer"
SILENCE = "silence"
ANY = "any"

LAYERS = ("hdlc", "wrapper", "acse", "xdlms", "axdr", "gbcs")
LLC_REQUEST = b"\xe6\xe6\x00"                 # IEC 62056-46 §5
PROPOSED_MAX_INFO = 128                       # what our SNRM proposes, both directions
CLOCK = b"\x00\x00\x01\x00\x00\xff"           # 0.0.1.0.0.255, class 8
IMPORT_ENERGY = b"\x01\x00\x01\x08\x00\xff"   # 1.0.1.8.0.255, class 3
LN_NO_CIPHERING = b"\x60\x85\x74\x05\x08\x01\x01"
MECHANISM_LOW = b"\x60\x85\x74\x05\x08\x02\x01"
REQUEST_VARIANTS = ("GetRequestNormal", "GetRequestNext", "GetRequestWithList",
                    "SetRequestNormal", "SetRequestWithList", "SetRequestWithFirstDatablock",
                    "SetRequestWithDatablock", "ActionRequestNormal")

# strategies built once: building and validating one costs more than drawing from it
AARQS = xdlms_strategies.aarqs()
REQUESTS = {name: xdlms_strategies.APDU_STRATEGIES[name] for name in REQUEST_VARIANTS}
# simple values and one level of arrays and structures of them: the recursive
# `data_values()` costs ~0.1 s a draw outside hypothesis' engine, too slow for a bench run
VALUES = st.one_of(
    axdr_strategies.simple_values(),
    st.tuples(st.sampled_from((axdr_strategies.ARRAY, axdr_strategies.STRUCTURE)),
              st.lists(axdr_strategies.simple_values(), max_size=4)))
MUTATED_VALUES = axdr_strategies.mutated_encodings(VALUES)
NOISE = st.binary(max_size=40)


class Case:
    def __init__(self, layer, action, data, expect, kind):
        self.layer = layer
        self.action = action
        self.data = bytes(data)
        self.expect = expect
        self.kind = kind              # which generator made it, for the report

    def to_json(self):
        return {"layer": self.layer, "action": self.action, "hex": self.data.hex(),
                "expect": self.expect, "kind": self.kind}

    @classmethod
    def from_json(cls, item):
        return cls(item["layer"], item["action"], bytes.fromhex(item["hex"]),
                   item.get("expect", ANY), item.get("kind", "replay"))

    def __repr__(self):
        return "Case(%s %s %s %s)" % (self.layer, self.kind, self.expect, self.data.hex()[:40])


# -- seeded sources ---------------------------------------------------------------------

def draw(strategy, rng):
    """One value of a hypothesis strategy, chosen by `rng` (a `random.Random`): the same
    seed gives the same value. Hypothesis has no public draw outside a test, so this
    runs the strategy on a data source over `rng`, as its own generate phase does."""
    for _ in range(DRAW_ATTEMPTS):
        data = ConjectureData(random=rng, max_choices=MAX_CHOICES)
        try:
            with BuildContext(data, is_final=True, wrapped_test=None):
                return data.draw(strategy)
        except StopTest:       # a filter found nothing this time: draw again
            continue
    raise RuntimeError("no value of %r in %d draws" % (strategy, DRAW_ATTEMPTS))


def mutate(data, rng):
    """(name, bytes): one byte-level mutation of `data`."""
    data = bytearray(data)
    name = rng.choice(("flip", "truncate", "insert", "delete", "length"))
    if not data:
        return "insert", bytes((rng.randrange(256),))
    at = rng.randrange(len(data))
    if name == "flip":
        data[at] ^= 1 << rng.randrange(8)
    elif name == "truncate":
        del data[at:]
    elif name == "insert":
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    elif name == "delete":
        del data[at]
    else:        # a length or count byte made huge, zero or off by one
        data[at] = rng.choice((0x00, 0x7F, 0x80, 0x81, 0x82, 0x84, 0xFF,
                               (data[at] + 1) & 0xFF, (data[at] - 1) & 0xFF))
    return name, bytes(data)


# -- what the cases are built from ------------------------------------------------------

class Context:
    """What the generators need to know of the DUT, from its profile."""

    def __init__(self, profile):
        hdlc = profile.get("hdlc") or {}
        upper, lower = hdlc.get("server_upper", 1), hdlc.get("server_lower", 0x10)
        size = 2 if upper <= 0x7F and lower <= 0x7F else 4
        self.server = hdlc_codec.server_address(upper, lower, size)
        clients = profile.get("clients") or {}
        self.public_sap = (clients.get("public") or {}).get("sap", 16)
        self.client = hdlc_codec.client_address(self.public_sap)
        self.wport = (profile.get("wrapper") or {}).get("wport", 1)
        self.password = (clients.get("management") or {}).get("password")
        self.writable = writable_attributes(profile)
        self.readable = [(8, CLOCK, a) for a in range(1, 10)] + [(3, IMPORT_ENERGY, 2)]
        self.commands = hdlc_strategies.commands_to(self.server, self.client, max_info=60)
        self.malformed = hdlc_strategies.malformed_hdlc_frames(self.commands)
        self.gbcs_commands = []        # GbcsMessages the DUT obeyed, for the GBCS layer


def writable_attributes(profile):
    """(class_id, logical name, attribute) the management client may write: the clock's
    (the profile's objects.clock.access.management.write), else the clock's time."""
    access = ((profile.get("objects") or {}).get("clock") or {}).get("access") or {}
    spec = access.get("management")
    attributes = spec.get("write") if isinstance(spec, dict) else None
    return [(8, CLOCK, a) for a in (attributes or [2])]


def aarq(password=None):
    """A valid AARQ (Green Book 9.4.2.2) as the host client sends it."""
    initiate = acse_codec.encode_user_information({
        "pdu": "initiate_request", "dedicated_key": None, "response_allowed": True,
        "proposed_quality_of_service": None, "proposed_dlms_version_number": 6,
        "proposed_conformance": 0x1C1F, "client_max_receive_pdu_size": 0xFFFF})
    fields = {"pdu": "aarq", "application_context_name": LN_NO_CIPHERING,
              "user_information": initiate}
    if password:
        fields.update(sender_acse_requirements=True, mechanism_name=MECHANISM_LOW,
                      calling_authentication_value=password.encode())
    return acse_codec.encode_acse(fields)


def get_request(class_id, ln, attribute, invoke=0xC1):
    return xdlms_codec.encode_apdu("GetRequestNormal", {
        "invoke_id_and_priority": invoke, "access_selection": None,
        "cosem_attribute_descriptor": {"class_id": class_id, "instance_id": ln,
                                       "attribute_id": attribute}})


def set_request_header(class_id, ln, attribute, invoke=0xC1):
    """SET-Request-Normal up to its value (Green Book 9.5: C1 01, invoke id, attribute
    descriptor, no selective access): the A-XDR layer puts a value after it."""
    return (bytes((0xC1, 0x01, invoke)) + class_id.to_bytes(2, "big") + ln
            + bytes((attribute & 0xFF, 0x00)))


def _snrm(context):
    parameters = hdlc_codec.build_parameters(max_info_transmit=PROPOSED_MAX_INFO,
                                             max_info_receive=PROPOSED_MAX_INFO)
    return hdlc_codec.build_frame(hdlc_codec.control("SNRM", True, code=0x83), context.server,
                                  context.client, parameters)


def _polled(frame):
    """Whether a good command frame must be answered by a station in any state: P set
    and not UI (IEC 62056-46 §6.4: a polled command gets a response; a UI frame with P
    is answered only while linked)."""
    control = hdlc_codec.parse_frame(frame).control
    return control.pf and control.kind != "UI"


# -- the layers -------------------------------------------------------------------------

def hdlc_case(context, rng):
    commands = context.commands
    kind = rng.choice(("malformed", "malformed", "command", "command", "linked", "oversized",
                       "noise"))
    if kind == "malformed":
        data = draw(context.malformed, rng)
        return Case("hdlc", "raw", data, SILENCE, kind)
    if kind == "command":
        frame = draw(commands, rng)
        return Case("hdlc", "raw", frame, ANSWER if _polled(frame) else ANY, kind)
    if kind == "linked":        # a link opened, then any command on it
        return Case("hdlc", "raw", _snrm(context) + draw(commands, rng), ANSWER, kind)
    if kind == "oversized":     # an I frame over the negotiated maximum: FRMR (reason Y)
        info = LLC_REQUEST + rng.randbytes(PROPOSED_MAX_INFO + rng.randint(1, 400))
        frame = hdlc_codec.build_frame(hdlc_codec.control("I", True, ns=0, nr=0),
                                       context.server, context.client, info)
        return Case("hdlc", "raw", _snrm(context) + frame, ANSWER, kind)
    return Case("hdlc", "raw", draw(NOISE, rng), ANY, kind)


def wrapper_case(context, rng):
    apdu = get_request(*rng.choice(context.readable))
    valid = wrapper_codec.build_wpdu(context.public_sap, context.wport, apdu)
    kind = rng.choice(("malformed", "malformed", "apdu", "apdu", "wport"))
    if kind == "malformed":
        data = draw(hdlc_strategies.malformed_wpdus(st.just(valid)), rng)
        return Case("wrapper", "wpdu", data, ANY, kind)
    if kind == "apdu":          # good framing around a broken APDU: answered
        _, broken = mutate(apdu, rng)
        return Case("wrapper", "wpdu",
                    wrapper_codec.build_wpdu(context.public_sap, context.wport, broken),
                    ANSWER, kind)
    other = rng.choice([p for p in (0, 2, 0x10, 0xFFFF) if p != context.wport])
    return Case("wrapper", "wpdu", wrapper_codec.build_wpdu(context.public_sap, other, apdu),
                SILENCE, kind)


def acse_case(context, rng):
    kind = rng.choice(("mutated", "mutated", "strategy", "authenticated"))
    if kind == "strategy":      # any AARQ the ACSE strategies build
        fields = draw(AARQS, rng)
        data = acse_codec.encode_acse(fields)
    elif kind == "authenticated":
        _, data = mutate(aarq(context.password or "password"), rng)
    else:
        data = draw(xdlms_strategies.mutated(st.just(aarq())), rng)
    return Case("acse", "aarq", data, ANSWER, kind)


def xdlms_case(context, rng):
    kind = rng.choice(("get", "set", "action", "strategy"))
    if kind == "strategy":      # any request the xDLMS strategies build, encoded
        name = rng.choice(REQUEST_VARIANTS)
        _, fields = draw(REQUESTS[name], rng)
        return Case("xdlms", "apdu", xdlms_codec.encode_apdu(name, fields), ANSWER, kind)
    if kind == "get":
        valid = get_request(*rng.choice(context.readable))
    elif kind == "set":
        valid = set_request_header(*rng.choice(context.writable)) + axdr_codec.encode(
            (9, rng.randbytes(12)))
    else:                       # clock.adjust_to_quarter (method 1, Blue Book 4.5.3)
        valid = bytes((0xC3, 0x01, 0xC1, 0x00, 0x08)) + CLOCK + b"\x01\x01\x0f\x00"
    if rng.random() < 0.5:
        return Case("xdlms", "apdu", draw(xdlms_strategies.mutated(st.just(valid)), rng),
                    ANSWER, kind)
    return Case("xdlms", "apdu", mutate(valid, rng)[1], ANSWER, kind)


def axdr_case(context, rng):
    header = set_request_header(*rng.choice(context.writable))
    if rng.random() < 0.25:     # a well-formed value of any type: the server must judge it
        value = axdr_codec.encode(draw(VALUES, rng))
        return Case("axdr", "apdu", header + value, ANSWER, "value")
    mutation, value = draw(MUTATED_VALUES, rng)
    return Case("axdr", "apdu", header + value, ANSWER, mutation)


def gbcs_case(context, rng):
    if not context.gbcs_commands:
        raise ValueError("the GBCS layer mutates recorded commands: none recorded")
    command = rng.choice(context.gbcs_commands)
    kind = rng.choice(("malformed", "malformed", "malformed", "mutated", "replayed"))
    if kind == "malformed":     # tampered (MAC check), absurd BER lengths, noise
        data = draw(gbcs_strategies.malformed_gbcs_messages(st.just(command)), rng)
    elif kind == "mutated":
        data = mutate(command.encode(), rng)[1]
    else:                       # obeyed once: its counter must now be refused
        data = command.encode()
    return Case("gbcs", "gbcs", data, ANY, kind)


GENERATORS = {"hdlc": hdlc_case, "wrapper": wrapper_case, "acse": acse_case,
              "xdlms": xdlms_case, "axdr": axdr_case, "gbcs": gbcs_case}


def cases(layer, context, seed):
    """Endless, repeatable cases for `layer`: the same seed, the same cases."""
    generate = GENERATORS[layer]
    rng = random.Random("%s/%d" % (layer, seed))
    while True:
        yield generate(context, rng)
