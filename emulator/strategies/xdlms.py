"""Hypothesis strategies for the xDLMS APDUs and the ACSE PDUs.

Values are codec-neutral field dicts, named as in the Green Book ASN.1 and as produced
by ``firmware.dlms.apdu`` ``fields()`` / ``emulator.codec.xdlms.decode_apdu``:

- ``apdus()`` -> ``(variant_name, fields)`` for every APDU variant;
  ``APDU_STRATEGIES[name]`` gives one variant.
- ``acse_pdus()`` -> ``{"pdu": "aarq"|"aare"|"rlrq"|"rlre", ...fields}``;
  ``ACSE_STRATEGIES[pdu]`` gives one.
- ``initiate_pdus()`` -> ``{"pdu": "initiate_request"|"initiate_response"|
  "confirmed_service_error", ...}`` (the xDLMS PDUs inside user-information).
- ``data_values()`` -> A-XDR Data in the tuple model (CORE_INTERFACES.md 1), from
  ``emulator.strategies.axdr``, kept small.
- ``mutated(bytes_strategy)`` -> the bytes with one random mutation: truncation, a
  changed, inserted or deleted byte, or garbage appended (for bad-input tests).
"""

from hypothesis import strategies as st

from emulator.strategies import axdr as axdr_strategies

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
i8 = st.integers(-128, 127)


def data_values():
    """Data values from the A-XDR strategies (every type, compact-arrays included),
    kept small: an APDU holds several of them."""
    return axdr_strategies.data_values(max_leaves=6)


# ---------------------------------------------------------------- APDU building blocks

def attribute_descriptors():
    return st.fixed_dictionaries({
        "class_id": u16, "instance_id": st.binary(min_size=6, max_size=6), "attribute_id": i8})


def method_descriptors():
    return st.fixed_dictionaries({
        "class_id": u16, "instance_id": st.binary(min_size=6, max_size=6), "method_id": i8})


def selective_access():
    return st.fixed_dictionaries({"access_selector": u8, "access_parameters": data_values()})


def optional_selection():
    return st.none() | selective_access()


def descriptor_lists(max_size=4):
    return st.lists(st.fixed_dictionaries({
        "cosem_attribute_descriptor": attribute_descriptors(),
        "access_selection": optional_selection()}), max_size=max_size)


def get_data_results():
    return st.one_of(
        st.fixed_dictionaries({"data": data_values(), "data_access_result": st.none()}),
        st.fixed_dictionaries({"data": st.none(), "data_access_result": u8}))


def raw_blocks():
    # sizes across the A-XDR length forms: 1-byte, 0x81 and 0x82 prefixes
    return st.one_of(st.binary(max_size=130), st.binary(min_size=250, max_size=300))


def _apdu(name, **fields):
    return st.fixed_dictionaries(fields).map(lambda f: (name, f))


IAP = u8

APDU_STRATEGIES = {
    "GetRequestNormal": _apdu("GetRequestNormal", invoke_id_and_priority=IAP,
                              cosem_attribute_descriptor=attribute_descriptors(),
                              access_selection=optional_selection()),
    "GetRequestNext": _apdu("GetRequestNext", invoke_id_and_priority=IAP, block_number=u32),
    "GetRequestWithList": _apdu("GetRequestWithList", invoke_id_and_priority=IAP,
                                attribute_descriptor_list=descriptor_lists()),
    "GetResponseNormal": _apdu("GetResponseNormal", invoke_id_and_priority=IAP,
                               result=get_data_results()),
    "GetResponseWithDatablock": st.one_of(
        _apdu("GetResponseWithDatablock", invoke_id_and_priority=IAP, last_block=st.booleans(),
              block_number=u32, raw_data=raw_blocks(), data_access_result=st.none()),
        _apdu("GetResponseWithDatablock", invoke_id_and_priority=IAP, last_block=st.booleans(),
              block_number=u32, raw_data=st.none(), data_access_result=u8)),
    "GetResponseWithList": _apdu("GetResponseWithList", invoke_id_and_priority=IAP,
                                 result=st.lists(get_data_results(), max_size=4)),
    "SetRequestNormal": _apdu("SetRequestNormal", invoke_id_and_priority=IAP,
                              cosem_attribute_descriptor=attribute_descriptors(),
                              access_selection=optional_selection(), value=data_values()),
    "SetRequestWithFirstDatablock": _apdu(
        "SetRequestWithFirstDatablock", invoke_id_and_priority=IAP,
        cosem_attribute_descriptor=attribute_descriptors(), access_selection=optional_selection(),
        last_block=st.booleans(), block_number=u32, raw_data=raw_blocks()),
    "SetRequestWithDatablock": _apdu("SetRequestWithDatablock", invoke_id_and_priority=IAP,
                                     last_block=st.booleans(), block_number=u32,
                                     raw_data=raw_blocks()),
    "SetRequestWithList": _apdu("SetRequestWithList", invoke_id_and_priority=IAP,
                                attribute_descriptor_list=descriptor_lists(),
                                value_list=st.lists(data_values(), max_size=4)),
    "SetRequestWithListAndFirstDatablock": _apdu(
        "SetRequestWithListAndFirstDatablock", invoke_id_and_priority=IAP,
        attribute_descriptor_list=descriptor_lists(), last_block=st.booleans(),
        block_number=u32, raw_data=raw_blocks()),
    "SetResponseNormal": _apdu("SetResponseNormal", invoke_id_and_priority=IAP, result=u8),
    "SetResponseDatablock": _apdu("SetResponseDatablock", invoke_id_and_priority=IAP,
                                  block_number=u32),
    "SetResponseLastDatablock": _apdu("SetResponseLastDatablock", invoke_id_and_priority=IAP,
                                      result=u8, block_number=u32),
    "SetResponseLastDatablockWithList": _apdu(
        "SetResponseLastDatablockWithList", invoke_id_and_priority=IAP,
        result=st.lists(u8, max_size=6), block_number=u32),
    "SetResponseWithList": _apdu("SetResponseWithList", invoke_id_and_priority=IAP,
                                 result=st.lists(u8, max_size=6)),
    "ActionRequestNormal": _apdu("ActionRequestNormal", invoke_id_and_priority=IAP,
                                 cosem_method_descriptor=method_descriptors(),
                                 method_invocation_parameters=st.none() | data_values()),
    "ActionResponseNormal": _apdu("ActionResponseNormal", invoke_id_and_priority=IAP,
                                  result=u8, return_parameters=st.none() | get_data_results()),
    "ExceptionResponse": st.one_of(
        _apdu("ExceptionResponse", state_error=st.sampled_from([1, 2]),
              service_error=st.integers(1, 5), invocation_counter=st.none()),
        _apdu("ExceptionResponse", state_error=st.sampled_from([1, 2]),
              service_error=st.just(6), invocation_counter=u32)),
    "DataNotification": _apdu("DataNotification", long_invoke_id_and_priority=u32,
                              date_time=st.just(b"") | st.binary(min_size=12, max_size=12),
                              notification_body=data_values()),
}


def apdus():
    return st.one_of(*APDU_STRATEGIES.values())


# ---------------------------------------------------------------- ACSE

# DLMS application-context-names and mechanism-names (Green Book 9.4.2.2.2 / 9.4.2.2.3),
# plus arbitrary OBJECT IDENTIFIER contents
_CONTEXTS = [bytes.fromhex("608574050801%02x" % n) for n in (1, 2, 3, 4)]
_MECHANISMS = [bytes.fromhex("608574050802%02x" % n) for n in range(8)]


def _oids(known):
    return st.sampled_from(known) | st.binary(min_size=1, max_size=12)


def _opt(strategy):
    return st.none() | strategy


small_bytes = st.binary(max_size=40)
ber_ints = st.integers(0, 14) | st.integers(0, 0x7FFFFFFF)


def user_information():
    return _opt(st.one_of(st.binary(max_size=60),
                          initiate_pdus().map(encode_initiate_for_strategy)))


def aarqs():
    return st.fixed_dictionaries({
        "pdu": st.just("aarq"),
        "protocol_version": _opt(u16),
        "application_context_name": _oids(_CONTEXTS),
        "called_ap_title": _opt(small_bytes),
        "called_ae_qualifier": _opt(small_bytes),
        "calling_ap_title": _opt(st.binary(min_size=8, max_size=8) | small_bytes),
        "calling_ae_qualifier": _opt(small_bytes),
        "sender_acse_requirements": _opt(st.booleans()),
        "mechanism_name": _opt(_oids(_MECHANISMS)),
        "calling_authentication_value": _opt(small_bytes),
        "user_information": user_information(),
    })


def aares():
    return st.fixed_dictionaries({
        "pdu": st.just("aare"),
        "protocol_version": _opt(u16),
        "application_context_name": _oids(_CONTEXTS),
        "result": st.sampled_from([0, 1, 2]) | ber_ints,
        "diagnostic_source": st.sampled_from([1, 2]),
        "result_source_diagnostic": ber_ints,
        "responding_ap_title": _opt(small_bytes),
        "responder_acse_requirements": _opt(st.booleans()),
        "mechanism_name": _opt(_oids(_MECHANISMS)),
        "responding_authentication_value": _opt(small_bytes),
        "user_information": user_information(),
    })


def _releases(pdu):
    return st.fixed_dictionaries({
        "pdu": st.just(pdu), "reason": _opt(st.sampled_from([0, 1, 30]) | ber_ints),
        "user_information": user_information()})


def initiate_requests():
    return st.fixed_dictionaries({
        "pdu": st.just("initiate_request"),
        "dedicated_key": _opt(st.binary(max_size=32)),
        "response_allowed": st.booleans(),
        "proposed_quality_of_service": _opt(i8),
        "proposed_dlms_version_number": st.sampled_from([6]) | u8,
        "proposed_conformance": st.integers(0, 0xFFFFFF),
        "client_max_receive_pdu_size": u16,
    })


def initiate_responses():
    return st.fixed_dictionaries({
        "pdu": st.just("initiate_response"),
        "negotiated_quality_of_service": _opt(i8),
        "negotiated_dlms_version_number": st.sampled_from([6]) | u8,
        "negotiated_conformance": st.integers(0, 0xFFFFFF),
        "server_max_receive_pdu_size": u16,
        "vaa_name": st.sampled_from([0x0007, 0xFA00]) | u16,
    })


def confirmed_service_errors():
    return st.fixed_dictionaries({
        "pdu": st.just("confirmed_service_error"),
        "confirmed_service": st.just(1) | u8,
        "service_error": st.just(6) | u8,
        "value": st.integers(0, 4) | u8,
    })


def initiate_pdus():
    return st.one_of(initiate_requests(), initiate_responses(), confirmed_service_errors())


def encode_initiate_for_strategy(fields):
    """A-XDR bytes of an Initiate PDU, written out by hand (Green Book 9.5) so the
    strategy depends on neither codec under test."""
    pdu = fields["pdu"]
    if pdu == "confirmed_service_error":
        return bytes((0x0E, fields["confirmed_service"], fields["service_error"], fields["value"]))
    out = bytearray()

    def optional_int8(v):
        out.extend(b"\x00" if v is None else bytes((1, v & 0xFF)))

    def tail(version, conformance, size):
        out.append(version)
        out.extend(b"\x5f\x1f\x04\x00" + conformance.to_bytes(3, "big") + size.to_bytes(2, "big"))

    if pdu == "initiate_request":
        out.append(0x01)
        key = fields["dedicated_key"]
        if key is None:
            out.append(0)
        else:
            out.extend(bytes((1, len(key))) + key)
        out.extend(b"\x00" if fields["response_allowed"] else b"\x01\x00")
        optional_int8(fields["proposed_quality_of_service"])
        tail(fields["proposed_dlms_version_number"], fields["proposed_conformance"],
             fields["client_max_receive_pdu_size"])
    else:
        out.append(0x08)
        optional_int8(fields["negotiated_quality_of_service"])
        tail(fields["negotiated_dlms_version_number"], fields["negotiated_conformance"],
             fields["server_max_receive_pdu_size"])
        out.extend(fields["vaa_name"].to_bytes(2, "big"))
    return bytes(out)


ACSE_STRATEGIES = {
    "aarq": aarqs(), "aare": aares(), "rlrq": _releases("rlrq"), "rlre": _releases("rlre"),
}


def acse_pdus():
    return st.one_of(*ACSE_STRATEGIES.values())


# ---------------------------------------------------------------- mutations

@st.composite
def mutated(draw, valid):
    """One mutation of a valid encoding (bytes strategy ``valid``)."""
    raw = bytearray(draw(valid))
    op = draw(st.sampled_from(["truncate", "change", "insert", "delete", "append"]))
    if op == "truncate" and raw:
        del raw[draw(st.integers(0, len(raw) - 1)):]
    elif op == "change" and raw:
        i = draw(st.integers(0, len(raw) - 1))
        raw[i] = (raw[i] + draw(st.integers(1, 255))) & 0xFF     # any other value
    elif op == "insert":
        raw.insert(draw(st.integers(0, len(raw))), draw(u8))
    elif op == "delete" and raw:
        del raw[draw(st.integers(0, len(raw) - 1))]
    else:
        raw.extend(draw(st.binary(min_size=1, max_size=4)))
    return bytes(raw)
