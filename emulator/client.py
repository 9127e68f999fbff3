"""A small synchronous DLMS/COSEM client (LN referencing, no ciphering) for the host.

Built only on the construct codecs (``emulator/codec/acse.py``, ``xdlms.py``,
``axdr.py``) and a blocking link connection (``emulator/link.py``), so it checks the
device's firmware codec from the outside instead of sharing it.

    with LinkConnection(link, SocketStream(host, port)) as connection:
        client = DlmsClient(connection)
        client.associate(client_sap=16)
        client.get(3, "1.0.1.8.0.255", 2)            # -> (6, 12345)
        client.read_profile("1.0.99.1.0.255", from_entry=1, to_entry=48)
        client.release()

Values are A-XDR Data in the tuple model of docs/CORE_INTERFACES.md §1. A refusal
raises ``DlmsClientError`` carrying the data-access-result, action-result, the
exception-response or the AARE diagnostic. References: Green Book 9.3 (COSEM-OPEN,
GET with block transfer, SET, ACTION, COSEM-RELEASE) and 9.5 (APDU syntax); selective
access to a Profile generic buffer: Blue Book 4.3.6 (range_descriptor 1,
entry_descriptor 2).
"""

import datetime

from emulator.codec import acse as C
from emulator.codec import axdr
from emulator.codec import hdlc as hdlc_codec
from emulator.codec import xdlms as X
from emulator.codec.errors import CodecError

PUBLIC_CLIENT = 16
MANAGEMENT_CLIENT = 1

LN_NO_CIPHERING = b"\x60\x85\x74\x05\x08\x01\x01"
MECHANISM_LOW = b"\x60\x85\x74\x05\x08\x02\x01"
CURRENT_ASSOCIATION = b"\x00\x00\x28\x00\x00\xff"     # 0.0.40.0.0.255
CLOCK = b"\x00\x00\x01\x00\x00\xff"                   # 0.0.1.0.0.255
CLOCK_CLASS = 8
ASSOCIATION_LN_CLASS = 15
PROFILE_GENERIC_CLASS = 7

# Conformance block bits the client proposes (Green Book 9.5 Conformance; bit n = 1 << (23 - n)):
# block-transfer-with-get (11) and -set (12), multiple-references (14), get (19),
# set (20), selective-access (21), action (23).
def _bit(n):
    return 1 << (23 - n)


BLOCK_TRANSFER_WITH_SET = _bit(12)
DEFAULT_CONFORMANCE = (_bit(11) | _bit(12) | _bit(14) | _bit(19) | _bit(20) | _bit(21)
                       | _bit(23))

RESULT_ACCEPTED = 0

# Tags and CHOICE numbers of the Data model (Blue Book "Data")
ARRAY, STRUCTURE, OCTET_STRING = 1, 2, 9
DOUBLE_LONG_UNSIGNED, INTEGER, LONG_UNSIGNED = 6, 15, 18

MAX_BLOCKS = 100000     # a device that never sends last-block must not hang the client


class DlmsClientError(Exception):
    """A request the device refused, or an answer the client cannot accept.

    Exactly the fields that apply are set: ``data_access_result`` (GET/SET),
    ``action_result`` (ACTION), ``exception`` (``(state_error, service_error)`` of an
    Exception-Response), ``diagnostic`` (AARE result-source-diagnostic, with
    ``initiate_error`` from a ConfirmedServiceError when the device sent one).
    """

    def __init__(self, message, data_access_result=None, action_result=None,
                 exception=None, diagnostic=None, initiate_error=None):
        Exception.__init__(self, message)
        self.data_access_result = data_access_result
        self.action_result = action_result
        self.exception = exception
        self.diagnostic = diagnostic
        self.initiate_error = initiate_error


def to_logical_name(value):
    """6 bytes from bytes or OBIS text ("1.0.1.8.0.255", "1-0:1.8.0*255", "1-0:1.8.0")."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 6:
            raise ValueError("a logical name is 6 bytes")
        return bytes(value)
    text = value.replace("-", ".").replace(":", ".").replace("*", ".")
    parts = [int(p) for p in text.split(".")]
    if len(parts) == 5:
        parts.append(255)
    if len(parts) != 6 or not all(0 <= p <= 255 for p in parts):
        raise ValueError("not an OBIS code: %r" % value)
    return bytes(parts)


def cosem_date_time(seconds):
    """COSEM date-time (Blue Book 4.1.6.1) of integer UTC seconds since 1970: deviation 0,
    clock status 0, hundredths 0."""
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=seconds)
    return (t.year.to_bytes(2, "big")
            + bytes((t.month, t.day, t.isoweekday(), t.hour, t.minute, t.second, 0))
            + b"\x00\x00\x00")


def range_descriptor(from_seconds, to_seconds, restricting=(CLOCK_CLASS, CLOCK, 2, 0)):
    """Selective access 1 (Blue Book 4.3.6): entries whose restricting object lies in
    [from, to]; every column (empty selected_values)."""
    return (STRUCTURE, [capture_object_definition(restricting),
                        (OCTET_STRING, cosem_date_time(from_seconds)),
                        (OCTET_STRING, cosem_date_time(to_seconds)),
                        (ARRAY, [])])


def entry_descriptor(from_entry=1, to_entry=0, from_column=1, to_column=0):
    """Selective access 2 (Blue Book 4.3.6): entries from..to (0 = the last), columns
    from..to (0 = the last)."""
    return (STRUCTURE, [(DOUBLE_LONG_UNSIGNED, from_entry), (DOUBLE_LONG_UNSIGNED, to_entry),
                        (LONG_UNSIGNED, from_column), (LONG_UNSIGNED, to_column)])


def capture_object_definition(key):
    class_id, name, attribute, data_index = key
    return (STRUCTURE, [(LONG_UNSIGNED, class_id), (OCTET_STRING, to_logical_name(name)),
                        (INTEGER, attribute), (LONG_UNSIGNED, data_index)])


def _attribute_item(item):
    """(class_id, ln, attribute[, selector, parameters]) -> descriptor-with-selection."""
    class_id, name, attribute = item[0], item[1], item[2]
    selector = item[3] if len(item) > 3 else None
    parameters = item[4] if len(item) > 4 else None
    return {"cosem_attribute_descriptor": _descriptor(class_id, name, attribute),
            "access_selection": _selection(selector, parameters)}


def _descriptor(class_id, name, attribute):
    return {"class_id": class_id, "instance_id": to_logical_name(name), "attribute_id": attribute}


def _selection(selector, parameters):
    if selector is None:
        return None
    if parameters is None:
        parameters = (0, None)
    return {"access_selector": selector, "access_parameters": parameters}


class DlmsClient:
    """One client association over one link connection; every call blocks."""

    def __init__(self, connection, invoke_id=1):
        self.connection = connection
        self.invoke_id = invoke_id & 0x0F
        self.client_sap = None
        self.conformance = 0
        self.max_pdu = 0
        self.server_max_pdu = 0

    # -- association ---------------------------------------------------------------

    def associate(self, client_sap=PUBLIC_CLIENT, password=None, max_pdu=0xFFFF,
                  conformance=DEFAULT_CONFORMANCE):
        """AARQ -> AARE; returns the negotiated InitiateResponse fields."""
        initiate = C.encode_user_information({
            "pdu": "initiate_request", "dedicated_key": None, "response_allowed": True,
            "proposed_quality_of_service": None, "proposed_dlms_version_number": 6,
            "proposed_conformance": conformance, "client_max_receive_pdu_size": max_pdu})
        aarq = {"pdu": "aarq", "application_context_name": LN_NO_CIPHERING,
                "user_information": initiate}
        if password is not None:
            aarq["sender_acse_requirements"] = True
            aarq["mechanism_name"] = MECHANISM_LOW
            aarq["calling_authentication_value"] = bytes(password)
        self._bind_client_sap(client_sap)
        reply = self._request(C.encode_acse(aarq))
        aare = self._decode_acse(reply, "aare")
        info = None
        if aare["user_information"] is not None:
            info = self._decode_user_information(aare["user_information"])
        if aare["result"] != RESULT_ACCEPTED:
            initiate_error = None
            if info is not None and info["pdu"] == "confirmed_service_error":
                initiate_error = info["value"]
            raise DlmsClientError(
                "association rejected (result %d, diagnostic %d)"
                % (aare["result"], aare["result_source_diagnostic"]),
                diagnostic=aare["result_source_diagnostic"], initiate_error=initiate_error)
        if info is None or info["pdu"] != "initiate_response":
            raise DlmsClientError("AARE accepted without an InitiateResponse")
        self.conformance = info["negotiated_conformance"]
        self.server_max_pdu = info["server_max_receive_pdu_size"]
        self.max_pdu = max_pdu
        return info

    def _bind_client_sap(self, client_sap):
        """The client SAP is the link's client address: the wrapper carries it in every
        WPDU (source wPort), an HDLC link was opened for one address."""
        link = getattr(self.connection, "link", None)
        if hasattr(link, "client_wport"):
            link.client_wport = client_sap
        elif hasattr(link, "client") and link.client != hdlc_codec.client_address(client_sap):
            raise DlmsClientError("the HDLC link is open for another client address; "
                                  "open a link with client_address=%d" % client_sap)
        self.client_sap = client_sap

    def release(self):
        """RLRQ -> RLRE; the association is over either way."""
        reply = self._request(C.encode_acse({"pdu": "rlrq", "reason": 0,
                                             "user_information": None}))
        self.conformance = 0
        return self._decode_acse(reply, "rlre")

    # -- GET -------------------------------------------------------------------------

    def get(self, class_id, logical_name, attribute, selector=None, parameters=None):
        """One attribute's value, following block transfer."""
        iap = self._next_iap()
        apdu = X.encode_apdu("GetRequestNormal", {
            "invoke_id_and_priority": iap,
            "cosem_attribute_descriptor": _descriptor(class_id, logical_name, attribute),
            "access_selection": _selection(selector, parameters)})
        name, fields = self._exchange(apdu, iap)
        if name == "GetResponseWithDatablock":
            raw = self._blocks(fields, iap)
            return self._decode_value(raw)
        self._expect(name, "GetResponseNormal")
        return self._data_result(fields["result"])

    def get_with_list(self, items):
        """[(class_id, ln, attribute[, selector, parameters]), ...] -> a list with each
        item's value, or a DlmsClientError (not raised) for an item that failed."""
        iap = self._next_iap()
        apdu = X.encode_apdu("GetRequestWithList", {
            "invoke_id_and_priority": iap,
            "attribute_descriptor_list": [_attribute_item(i) for i in items]})
        name, fields = self._exchange(apdu, iap)
        if name == "GetResponseWithDatablock":
            # raw-data is the SEQUENCE OF Get-Data-Result (Green Book 9.3, GET with block transfer)
            raw = self._blocks(fields, iap)
            name, fields = self._decode_apdu(b"\xc4\x03" + bytes((iap,)) + raw)
        self._expect(name, "GetResponseWithList")
        if len(fields["result"]) != len(items):
            raise DlmsClientError("%d results for %d items" % (len(fields["result"]), len(items)))
        out = []
        for result in fields["result"]:
            try:
                out.append(self._data_result(result))
            except DlmsClientError as e:
                out.append(e)
        return out

    def _blocks(self, fields, iap):
        """Collect a long GET's raw-data: acknowledge each block with GET-Request-Next."""
        raw = bytearray()
        expected = 1
        while True:
            if fields["data_access_result"] is not None:
                raise DlmsClientError(
                    "long GET ended with data-access-result %d" % fields["data_access_result"],
                    data_access_result=fields["data_access_result"])
            if fields["block_number"] != expected:
                raise DlmsClientError("block %d where %d was due"
                                      % (fields["block_number"], expected))
            raw.extend(fields["raw_data"])
            if fields["last_block"]:
                return bytes(raw)
            if expected >= MAX_BLOCKS:
                raise DlmsClientError("more than %d blocks" % MAX_BLOCKS)
            apdu = X.encode_apdu("GetRequestNext", {"invoke_id_and_priority": iap,
                                                    "block_number": expected})
            name, fields = self._exchange(apdu, iap)
            self._expect(name, "GetResponseWithDatablock")
            expected += 1

    # -- SET -------------------------------------------------------------------------

    def set(self, class_id, logical_name, attribute, value, selector=None, parameters=None):
        """Write one attribute; raises DlmsClientError unless the result is success."""
        iap = self._next_iap()
        descriptor = _descriptor(class_id, logical_name, attribute)
        selection = _selection(selector, parameters)
        apdu = X.encode_apdu("SetRequestNormal", {
            "invoke_id_and_priority": iap, "cosem_attribute_descriptor": descriptor,
            "access_selection": selection, "value": value})
        if (self.server_max_pdu and len(apdu) > self.server_max_pdu
                and self.conformance & BLOCK_TRANSFER_WITH_SET):
            return self._set_in_blocks(iap, descriptor, selection, axdr.encode(value))
        name, fields = self._exchange(apdu, iap)
        self._expect(name, "SetResponseNormal")
        _check_set(fields["result"])

    def _set_in_blocks(self, iap, descriptor, selection, raw):
        """SET with block transfer: raw-data cut to fit the server's receive PDU."""
        first = {"invoke_id_and_priority": iap, "cosem_attribute_descriptor": descriptor,
                 "access_selection": selection, "last_block": False, "block_number": 1,
                 "raw_data": b""}
        # the empty first block's size, plus up to 3 more length octets once filled
        room = self.server_max_pdu - len(X.encode_apdu("SetRequestWithFirstDatablock", first)) - 2
        offset, block = 0, 1
        while True:
            chunk = raw[offset:offset + room]
            offset += len(chunk)
            last = offset >= len(raw)
            fields = {"invoke_id_and_priority": iap, "last_block": last,
                      "block_number": block, "raw_data": chunk}
            if block == 1:
                first.update(fields)
                apdu = X.encode_apdu("SetRequestWithFirstDatablock", first)
            else:
                apdu = X.encode_apdu("SetRequestWithDatablock", fields)
            name, answer = self._exchange(apdu, iap)
            if name == "SetResponseLastDatablock":
                _check_set(answer["result"])
                if not last:
                    raise DlmsClientError("SET ended at block %d of a longer value" % block)
                return
            self._expect(name, "SetResponseDatablock")
            if last or answer["block_number"] != block:
                raise DlmsClientError("block %d acknowledged as %d"
                                      % (block, answer["block_number"]))
            block += 1
            room = self.server_max_pdu - 11    # C1 03 iap last(1) block(4) length(<=3)

    def set_with_list(self, items):
        """[(class_id, ln, attribute, value), ...] -> the data-access-result of each
        (0 is success; nothing is raised for a refused item)."""
        iap = self._next_iap()
        apdu = X.encode_apdu("SetRequestWithList", {
            "invoke_id_and_priority": iap,
            "attribute_descriptor_list": [_attribute_item(i[:3]) for i in items],
            "value_list": [i[3] for i in items]})
        name, fields = self._exchange(apdu, iap)
        self._expect(name, "SetResponseWithList")
        return list(fields["result"])

    # -- ACTION ----------------------------------------------------------------------

    def action(self, class_id, logical_name, method, parameters=None):
        """Invoke a method; returns its return value (or None)."""
        iap = self._next_iap()
        apdu = X.encode_apdu("ActionRequestNormal", {
            "invoke_id_and_priority": iap,
            "cosem_method_descriptor": {"class_id": class_id,
                                        "instance_id": to_logical_name(logical_name),
                                        "method_id": method},
            "method_invocation_parameters": parameters})
        name, fields = self._exchange(apdu, iap)
        self._expect(name, "ActionResponseNormal")
        if fields["result"] != 0:
            raise DlmsClientError("action-result %d" % fields["result"],
                                  action_result=fields["result"])
        if fields["return_parameters"] is None:
            return None
        return self._data_result(fields["return_parameters"])

    # -- COSEM conveniences ----------------------------------------------------------

    def object_list(self):
        """The current association's object_list as dicts: class_id, version,
        logical_name, attribute_access {id: (mode, selectors)}, method_access {id: mode}."""
        value = self.get(ASSOCIATION_LN_CLASS, CURRENT_ASSOCIATION, 2)
        return [_object_list_element(element) for element in _payload(value, ARRAY)]

    def read_profile(self, ln, from_seconds=None, to_seconds=None, from_entry=None,
                     to_entry=None):
        """A Profile generic buffer as a list of rows (lists of values): whole, by range
        of capture time (seconds since 1970, inclusive) or by entry number (1-based)."""
        if from_seconds is not None or to_seconds is not None:
            if from_entry is not None or to_entry is not None:
                raise ValueError("select by time or by entry, not both")
            restricting = self._time_column(ln)
            low = 0 if from_seconds is None else from_seconds
            high = 0xFFFFFFFF if to_seconds is None else to_seconds
            buffer = self.get(PROFILE_GENERIC_CLASS, ln, 2, 1,
                              range_descriptor(low, high, restricting))
        elif from_entry is not None or to_entry is not None:
            buffer = self.get(PROFILE_GENERIC_CLASS, ln, 2, 2,
                              entry_descriptor(from_entry or 1, to_entry or 0))
        else:
            buffer = self.get(PROFILE_GENERIC_CLASS, ln, 2)
        return [list(_payload(row, STRUCTURE)) for row in _payload(buffer, ARRAY)]

    def _time_column(self, ln):
        """The capture object that timestamps entries: the clock's time, if captured."""
        columns = _payload(self.get(PROFILE_GENERIC_CLASS, ln, 3), ARRAY)
        keys = []
        for column in columns:
            items = _payload(column, STRUCTURE)
            keys.append((items[0][1], items[1][1], items[2][1], items[3][1]))
        for key in keys:
            if key[0] == CLOCK_CLASS and key[2] == 2:
                return key
        if not keys:
            raise DlmsClientError("profile has no capture objects")
        return keys[0]

    # -- plumbing --------------------------------------------------------------------

    def _next_iap(self):
        # invoke-id-and-priority: invoke-id in bits 0-3, confirmed service (bit 6)
        iap = 0x40 | self.invoke_id
        self.invoke_id = (self.invoke_id + 1) & 0x0F
        return iap | 0x80   # high priority, as Gurux and most head-ends send

    def _request(self, apdu):
        if self.client_sap is None:
            raise DlmsClientError("not associated: call associate() first")
        reply = self.connection.request(apdu)
        if reply is None:
            raise DlmsClientError("no answer")
        return reply

    def _exchange(self, apdu, iap):
        name, fields = self._decode_apdu(self._request(apdu))
        if name == "ExceptionResponse":
            raise DlmsClientError(
                "exception-response: state-error %d, service-error %d"
                % (fields["state_error"], fields["service_error"]),
                exception=(fields["state_error"], fields["service_error"]))
        if fields.get("invoke_id_and_priority") != iap:
            raise DlmsClientError("answer for invoke-id-and-priority 0x%02x, sent 0x%02x"
                                  % (fields.get("invoke_id_and_priority", -1), iap))
        return name, fields

    @staticmethod
    def _expect(name, wanted):
        if name != wanted:
            raise DlmsClientError("%s where %s was due" % (name, wanted))

    @staticmethod
    def _data_result(result):
        if result["data_access_result"] is not None:
            code = result["data_access_result"]
            raise DlmsClientError("data-access-result %d" % code, data_access_result=code)
        return result["data"]

    @staticmethod
    def _decode_apdu(buf):
        try:
            return X.decode_apdu(buf)
        except CodecError as e:
            raise DlmsClientError("undecodable answer: %s" % e)

    @staticmethod
    def _decode_value(buf):
        try:
            return axdr.decode(buf)
        except CodecError as e:
            raise DlmsClientError("undecodable block-transfer data: %s" % e)

    @staticmethod
    def _decode_acse(buf, pdu):
        try:
            fields = C.decode_acse(buf)
        except CodecError as e:
            # a device may answer an ACSE request with an Exception-Response
            try:
                name, body = X.decode_apdu(buf)
            except CodecError:
                raise DlmsClientError("undecodable answer: %s" % e)
            if name == "ExceptionResponse":
                raise DlmsClientError("exception-response", exception=(
                    body["state_error"], body["service_error"]))
            raise DlmsClientError("%s where %s was due" % (name, pdu.upper()))
        if fields["pdu"] != pdu:
            raise DlmsClientError("%s where %s was due" % (fields["pdu"].upper(), pdu.upper()))
        return fields

    @staticmethod
    def _decode_user_information(buf):
        try:
            return C.decode_user_information(buf)
        except CodecError as e:
            raise DlmsClientError("undecodable user-information: %s" % e)



def _check_set(result):
    if result != 0:
        raise DlmsClientError("data-access-result %d" % result, data_access_result=result)


def _payload(value, tag):
    if not isinstance(value, tuple) or len(value) != 2 or value[0] != tag:
        raise DlmsClientError("expected Data tag %d, got %r" % (tag, value))
    return value[1]


def _object_list_element(element):
    """object_list_element (Blue Book 4.4.3): {class_id, version, logical_name,
    access_rights {attribute_access array, method_access array}}."""
    items = _payload(element, STRUCTURE)
    rights = _payload(items[3], STRUCTURE)
    attributes = {}
    for a in _payload(rights[0], ARRAY):
        fields = _payload(a, STRUCTURE)
        selectors = fields[2]
        attributes[fields[0][1]] = (fields[1][1], [s[1] for s in selectors[1]]
                                    if selectors[0] == ARRAY else [])
    methods = {}
    for m in _payload(rights[1], ARRAY):
        fields = _payload(m, STRUCTURE)
        # version 0 sends a boolean, version 1 an enum: both read as an int mode
        methods[fields[0][1]] = int(fields[1][1])
    return {"class_id": items[0][1], "version": items[1][1], "logical_name": items[2][1],
            "attribute_access": attributes, "method_access": methods}
