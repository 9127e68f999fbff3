"""xDLMS server side of the COSEM application layer (contract: docs/CORE_INTERFACES.md §3).

DLMS UA 1000-2 Green Book references: the COSEM-OPEN / COSEM-RELEASE and GET / SET /
ACTION service specifications (9.3, including GET and SET with block transfer), the
protocol rules for establishing an association and for block transfer (9.4), and the
APDU abstract syntax: AARQ/AARE/RLRQ/RLRE, Get-/Set-/Action-Request/-Response,
ExceptionResponse, Conformance (9.5).

Sans-IO: ``DlmsSession.handle(apdu, client_sap)`` takes one complete APDU (the framing
layer has reassembled it) and returns the reply APDU or ``None``. It never raises: a
request the server cannot serve is answered in the protocol's own terms, and a bad
APDU changes nothing (it is decoded completely before anything acts on it).

Choices the standard leaves open, taken here:
- A client SAP with no ClientConfig in the LogicalDevice is not an associated partner
  (Association LN ``associated_partners_id``): every APDU from it is discarded
  (``None``), as a data link discards frames for an address it does not serve. The
  client sees a time-out, never a hint about which SAPs exist.
- An AARQ while that client's association is open is rejected (rejected-permanent,
  no-reason-given) and the open association is kept: bad input changes no state.
  A new association needs RLRQ first, or a new link (``abort`` on DISC / TCP close).
- Long GET: a GET-Request-Next whose block number is not the last block sent ends the
  long GET with data-block-number-invalid; GET-Request-Next with no long GET pending
  gets no-long-get-in-progress; any other request abandons the long GET and is served.
- Exception-Response codes: request before association -> service-not-allowed /
  operation-not-possible; unknown APDU tag or unsupported variant -> service-unknown /
  service-not-supported; service not in the negotiated conformance -> service-not-allowed
  / service-not-supported; undecodable APDU -> service-not-allowed / other-reason;
  request longer than the server's max receive PDU -> service-not-allowed / pdu-too-long.
- Objects outside a client's association (no access-rights entry for that SAP) answer
  scope-of-access-violated; inside it, a missing read/write/method right answers
  read-write-denied; an unknown object or attribute answers object-undefined.
"""

from firmware.cosem.base import ActionError, Context, DataAccessError
from firmware.cosem.logical_device import AUTH_LOW, AUTH_LOWEST
from firmware.dlms import acse as C
from firmware.dlms import apdu as A
from firmware.dlms import axdr
from firmware.dlms import results as R

# What this server offers (Green Book 9.5, Conformance ::= [APPLICATION 31] BIT STRING); an
# association gets the AND of this and what the client proposes.
SERVER_CONFORMANCE = (C.CONFORMANCE_GET | C.CONFORMANCE_SET | C.CONFORMANCE_ACTION
                      | C.CONFORMANCE_SELECTIVE_ACCESS | C.CONFORMANCE_MULTIPLE_REFERENCES
                      | C.CONFORMANCE_BLOCK_TRANSFER_WITH_GET_OR_READ
                      | C.CONFORMANCE_BLOCK_TRANSFER_WITH_SET_OR_WRITE)
# Smallest client max-receive-pdu-size that still carries a Get-Response-With-Datablock
# header with some data (Green Book 9.4: the server answers a too-short size with the
# initiate error pdu-size-too-short).
MIN_PDU_SIZE = 16
# A long SET collects at most this many bytes before it is aborted (board RAM).
MAX_LONG_SET_BYTES = 4096


class DlmsServer:
    """The xDLMS server of one logical device; one ``DlmsSession`` per link."""

    def __init__(self, logical_device, clock, max_pdu_size=1024, conformance=SERVER_CONFORMANCE):
        self.logical_device = logical_device
        self.clock = clock
        self.max_pdu_size = max_pdu_size
        self.conformance = conformance

    def new_session(self):
        return DlmsSession(self)


class Association:
    """One open application association: what was negotiated, and any long transfer."""

    def __init__(self, client_sap, config, conformance, max_pdu_size):
        self.client_sap = client_sap
        self.config = config
        self.conformance = conformance
        self.max_pdu_size = max_pdu_size   # largest APDU the client accepts
        self.long_get = None               # _LongGet while blocks are pending
        self.long_set = None               # _LongSet while blocks are arriving


class _LongGet:
    # The whole response is kept encoded (one bytes object) and blocks are sliced
    # from it, so a block costs no re-encoding and no object state is held.
    def __init__(self, encoded):
        self.encoded = encoded
        self.offset = 0
        self.block_number = 0


class _LongSet:
    def __init__(self, items, with_list):
        self.items = items                 # [DescriptorWithSelection]
        self.with_list = with_list         # answer with the list form
        self.received = bytearray()
        self.block_number = 0


# --- the session -------------------------------------------------------------------

_XDLMS_REQUEST_TAGS = (A.GET_REQUEST, A.SET_REQUEST, A.ACTION_REQUEST)


def exception_response(state_error, service_error):
    return A.ExceptionResponse(state_error, service_error).encode()


class DlmsSession:
    """The COSEM application layer of one link: the associations opened over it."""

    def __init__(self, server):
        self.server = server
        self._associations = {}    # client SAP -> Association

    def association(self, client_sap):
        """The open association of `client_sap`, or None (Association LN reads this)."""
        return self._associations.get(client_sap)

    def abort(self):
        """The link is gone (DISC, TCP close): every association on it ends."""
        self._associations = {}

    def handle(self, apdu, client_sap):
        try:
            return self._dispatch(bytes(apdu), client_sap)
        except Exception:
            # Contract §3: never raise. Only a bug gets here; the decoders ran first,
            # so no object was touched by a half-understood request.
            return exception_response(R.STATE_ERROR_SERVICE_NOT_ALLOWED,
                                      R.SERVICE_ERROR_OTHER_REASON)

    def _dispatch(self, apdu, client_sap):
        config = self.server.logical_device.client(client_sap)
        if config is None:
            return None     # not a partner of this logical device (module docstring)
        if len(apdu) > self.server.max_pdu_size:
            return exception_response(R.STATE_ERROR_SERVICE_NOT_ALLOWED,
                                      R.SERVICE_ERROR_PDU_TOO_LONG)
        tag = apdu[0] if apdu else -1
        if tag == C.AARQ_TAG:
            return self._associate(apdu, client_sap, config)
        if tag == C.RLRQ_TAG:
            return self._release(apdu, client_sap)
        if tag not in _XDLMS_REQUEST_TAGS:
            return exception_response(R.STATE_ERROR_SERVICE_UNKNOWN,
                                      R.SERVICE_ERROR_SERVICE_NOT_SUPPORTED)
        assoc = self._associations.get(client_sap)
        if assoc is None:
            return exception_response(R.STATE_ERROR_SERVICE_NOT_ALLOWED,
                                      R.SERVICE_ERROR_OPERATION_NOT_POSSIBLE)
        try:
            request = A.decode_apdu(apdu)
        except A.ApduError as err:
            if err.offset == 1 and len(apdu) > 1:
                # the tag is a request, its CHOICE is one this server does not offer
                return exception_response(R.STATE_ERROR_SERVICE_UNKNOWN,
                                          R.SERVICE_ERROR_SERVICE_NOT_SUPPORTED)
            return exception_response(R.STATE_ERROR_SERVICE_NOT_ALLOWED,
                                      R.SERVICE_ERROR_OTHER_REASON)
        return self._serve(assoc, request)

    # -- ACSE: COSEM-OPEN and COSEM-RELEASE (Green Book 9.3 services, 9.4 protocol) ------

    def _associate(self, apdu, client_sap, config):
        try:
            aarq = C.decode_acse(apdu)
        except C.AcseError:
            return _aare_rejected(C.LN_NO_CIPHERING, C.DIAG_NO_REASON_GIVEN)
        context = aarq.application_context_name
        if client_sap in self._associations:
            # the open association stays as it is (module docstring)
            return _aare_rejected(context, C.DIAG_NO_REASON_GIVEN)
        if context != C.LN_NO_CIPHERING:
            return _aare_rejected(context, C.DIAG_APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
        diagnostic = _authenticate(aarq, config)
        if diagnostic != C.DIAG_NULL:
            return _aare_rejected(context, diagnostic)
        initiate = _initiate_request(aarq)
        if initiate is None:
            return _aare_rejected(context, C.DIAG_NO_REASON_GIVEN)
        error = self._initiate_error(initiate)
        if error is not None:
            service_error = C.ConfirmedServiceError(C.INITIATE_ERROR, C.SERVICE_ERROR_INITIATE,
                                                    error)
            return _aare_rejected(context, C.DIAG_NO_REASON_GIVEN, service_error.encode())
        conformance = initiate.proposed_conformance & self.server.conformance
        max_pdu = self.server.max_pdu_size
        if initiate.client_max_receive_pdu_size:     # 0: the client sets no limit
            max_pdu = min(max_pdu, initiate.client_max_receive_pdu_size)
        self._associations[client_sap] = Association(client_sap, config, conformance, max_pdu)
        response = C.InitiateResponse(negotiated_dlms_version_number=C.DLMS_VERSION,
                                      negotiated_conformance=conformance,
                                      server_max_receive_pdu_size=self.server.max_pdu_size,
                                      vaa_name=C.VAA_NAME_LN)
        aare = C.Aare(context, C.RESULT_ACCEPTED, C.DIAG_NULL,
                      user_information=response.encode())
        if config.authentication == AUTH_LOW:
            aare.responder_acse_requirements = True
            aare.mechanism_name = C.MECHANISM_LOW
        return aare.encode()

    def _initiate_error(self, initiate):
        """The initiate ServiceError for an InitiateRequest this server refuses, or None."""
        if initiate.dedicated_key is not None:
            return C.INITIATE_OTHER         # no ciphering in this context: no key to use
        if initiate.proposed_dlms_version_number < C.DLMS_VERSION:
            return C.INITIATE_DLMS_VERSION_TOO_LOW
        if initiate.proposed_conformance & self.server.conformance == 0:
            return C.INITIATE_INCOMPATIBLE_CONFORMANCE
        size = initiate.client_max_receive_pdu_size
        if size and size < MIN_PDU_SIZE:
            return C.INITIATE_PDU_SIZE_TOO_SHORT
        return None

    def _release(self, apdu, client_sap):
        try:
            C.decode_acse(apdu)
        except C.AcseError:
            return exception_response(R.STATE_ERROR_SERVICE_NOT_ALLOWED,
                                      R.SERVICE_ERROR_OTHER_REASON)
        # Releasing what is not open is answered the same way: the client's intent
        # (no association) already holds.
        if client_sap in self._associations:
            del self._associations[client_sap]
        return C.Rlre(reason=C.RELEASE_RESPONSE_NORMAL).encode()

    # -- xDLMS services ---------------------------------------------------------------

    def _serve(self, assoc, request):
        handler = _HANDLERS.get(type(request))
        if handler is None:
            return exception_response(R.STATE_ERROR_SERVICE_UNKNOWN,
                                      R.SERVICE_ERROR_SERVICE_NOT_SUPPORTED)
        needed = _needed_conformance(request)
        if assoc.conformance & needed != needed:
            return exception_response(R.STATE_ERROR_SERVICE_NOT_ALLOWED,
                                      R.SERVICE_ERROR_SERVICE_NOT_SUPPORTED)
        if not isinstance(request, A.GetRequestNext):
            assoc.long_get = None      # any other request abandons a long GET
        if not isinstance(request, A.SetRequestWithDatablock):
            assoc.long_set = None
        return handler(self, assoc, request)

    def _context(self, assoc):
        return Context(self.server.clock(), assoc.client_sap, self)

    def _resolve(self, assoc, class_id, logical_name):
        """(object, None) or (None, data-access-result) for this client."""
        ld = self.server.logical_device
        obj = ld.find(class_id, logical_name, assoc.client_sap)
        if obj is None:
            if ld.find_by_name(logical_name) is not None:
                return None, R.OBJECT_CLASS_INCONSISTENT
            return None, R.OBJECT_UNDEFINED
        if ld.rights(assoc.client_sap, obj) is None:
            return None, R.SCOPE_OF_ACCESS_VIOLATED
        return obj, None

    def _read(self, assoc, item):
        """One attribute for GET: (encoded Data, None) or (None, data-access-result)."""
        desc = item.cosem_attribute_descriptor
        obj, error = self._resolve(assoc, desc.class_id, desc.instance_id)
        if error is not None:
            return None, error
        attribute = desc.attribute_id
        if attribute < 1 or attribute > obj.attribute_count:
            return None, R.OBJECT_UNDEFINED
        mode = self.server.logical_device.attribute_access(assoc.client_sap, obj, attribute)
        if not mode & 1:
            return None, R.READ_WRITE_DENIED
        selector, parameters = 0, None
        if item.access_selection is not None:
            selector = item.access_selection.access_selector
            parameters = item.access_selection.access_parameters
        try:
            value = obj.get(attribute, self._context(assoc), selector, parameters)
            return axdr.encode(value), None
        except DataAccessError as err:
            return None, err.code
        except Exception:
            return None, R.OTHER_REASON

    def _write(self, assoc, desc, access_selection, value):
        """One attribute for SET: a data-access-result."""
        obj, error = self._resolve(assoc, desc.class_id, desc.instance_id)
        if error is not None:
            return error
        attribute = desc.attribute_id
        if attribute < 1 or attribute > obj.attribute_count:
            return R.OBJECT_UNDEFINED
        mode = self.server.logical_device.attribute_access(assoc.client_sap, obj, attribute)
        if not mode & 2:
            return R.READ_WRITE_DENIED
        if access_selection is not None:
            # COSEM set() takes no selector (contract §2): a partial write cannot be
            # honoured, so refuse it rather than write the whole attribute.
            return R.SCOPE_OF_ACCESS_VIOLATED
        try:
            obj.set(attribute, value, self._context(assoc))
            return R.SUCCESS
        except DataAccessError as err:
            return err.code
        except Exception:
            return R.OTHER_REASON

    def _get_normal(self, assoc, request):
        encoded, error = self._read(assoc, request)
        iap = request.invoke_id_and_priority
        if error is not None:
            return A.GetResponseNormal(iap, A.GetDataResult.of_error(error)).encode()
        # Get-Response-Normal: C4 01 iap 00 <Data> (Green Book 9.5)
        return self._fit(assoc, iap, bytes((A.GET_RESPONSE, 1, iap, 0)), encoded)

    def _get_with_list(self, assoc, request):
        iap = request.invoke_id_and_priority
        # SEQUENCE OF Get-Data-Result, encoded once: it is also the raw-data of a
        # long GET (Green Book 9.3, GET with block transfer: blocks carry the result list).
        results = bytearray(axdr.encode_length(len(request.attribute_descriptor_list)))
        for item in request.attribute_descriptor_list:
            encoded, error = self._read(assoc, item)
            if error is None:
                results.append(0)
                results.extend(encoded)
            else:
                results.append(1)
                results.append(error)
        return self._fit(assoc, iap, bytes((A.GET_RESPONSE, 3, iap)), bytes(results))

    def _fit(self, assoc, iap, header, raw):
        """header + raw if that fits the client's PDU size, else the first block of raw.

        Only `raw` is kept for the blocks that follow (board RAM: one copy).
        """
        if len(header) + len(raw) <= assoc.max_pdu_size:
            return header + raw
        if not assoc.conformance & C.CONFORMANCE_BLOCK_TRANSFER_WITH_GET_OR_READ:
            return A.GetResponseNormal(iap, A.GetDataResult.of_error(R.OTHER_REASON)).encode()
        assoc.long_get = _LongGet(raw)
        return self._next_block(assoc, iap)

    def _next_block(self, assoc, iap):
        long_get = assoc.long_get
        remaining = len(long_get.encoded) - long_get.offset
        size = _block_payload_size(assoc.max_pdu_size, remaining)
        start = long_get.offset
        long_get.offset = start + size
        long_get.block_number += 1
        last = long_get.offset >= len(long_get.encoded)
        block = A.GetResponseWithDatablock(iap, last, long_get.block_number,
                                           raw_data=long_get.encoded[start:start + size])
        if last:
            assoc.long_get = None
        return block.encode()

    def _get_next(self, assoc, request):
        iap = request.invoke_id_and_priority
        long_get = assoc.long_get
        if long_get is None:
            return A.GetResponseWithDatablock(
                iap, True, request.block_number,
                data_access_result=R.NO_LONG_GET_IN_PROGRESS).encode()
        if request.block_number != long_get.block_number:
            assoc.long_get = None
            return A.GetResponseWithDatablock(
                iap, True, request.block_number,
                data_access_result=R.DATA_BLOCK_NUMBER_INVALID).encode()
        return self._next_block(assoc, iap)

    def _set_normal(self, assoc, request):
        result = self._write(assoc, request.cosem_attribute_descriptor,
                             request.access_selection, request.value)
        return A.SetResponseNormal(request.invoke_id_and_priority, result).encode()

    def _set_with_list(self, assoc, request):
        descriptors = request.attribute_descriptor_list
        values = request.value_list
        if len(descriptors) != len(values):
            return exception_response(R.STATE_ERROR_SERVICE_NOT_ALLOWED,
                                      R.SERVICE_ERROR_OTHER_REASON)
        results = []
        for i in range(len(descriptors)):
            item = descriptors[i]
            results.append(self._write(assoc, item.cosem_attribute_descriptor,
                                       item.access_selection, values[i]))
        return A.SetResponseWithList(request.invoke_id_and_priority, results).encode()

    def _set_first_block(self, assoc, request):
        item = A.DescriptorWithSelection(request.cosem_attribute_descriptor,
                                         request.access_selection)
        assoc.long_set = _LongSet([item], False)
        return self._set_block(assoc, request)

    def _set_list_first_block(self, assoc, request):
        assoc.long_set = _LongSet(request.attribute_descriptor_list, True)
        return self._set_block(assoc, request)

    def _set_next_block(self, assoc, request):
        if assoc.long_set is None:
            return A.SetResponseLastDatablock(request.invoke_id_and_priority,
                                              R.NO_LONG_SET_IN_PROGRESS,
                                              request.block_number).encode()
        return self._set_block(assoc, request)

    def _set_block(self, assoc, request):
        # Green Book 9.3, SET with block transfer: blocks are numbered from 1; each but
        # the last is acknowledged with Set-Response-Datablock, the last with the result.
        iap = request.invoke_id_and_priority
        long_set = assoc.long_set
        error = None
        if request.block_number != long_set.block_number + 1:
            error = R.DATA_BLOCK_NUMBER_INVALID
        elif len(long_set.received) + len(request.raw_data) > MAX_LONG_SET_BYTES:
            error = R.LONG_SET_ABORTED
        if error is not None:
            assoc.long_set = None
            return _last_set_response(long_set, iap, error, request.block_number)
        long_set.received.extend(request.raw_data)
        long_set.block_number = request.block_number
        if not request.last_block:
            return A.SetResponseDatablock(iap, request.block_number).encode()
        assoc.long_set = None
        values = _long_set_values(long_set)
        if values is None:
            return _last_set_response(long_set, iap, R.TYPE_UNMATCHED, request.block_number)
        results = []
        for i in range(len(values)):
            item = long_set.items[i]
            results.append(self._write(assoc, item.cosem_attribute_descriptor,
                                       item.access_selection, values[i]))
        if long_set.with_list:
            return A.SetResponseLastDatablockWithList(iap, results, request.block_number).encode()
        return A.SetResponseLastDatablock(iap, results[0], request.block_number).encode()

    def _action_normal(self, assoc, request):
        iap = request.invoke_id_and_priority
        result, value = self._invoke(assoc, request)
        if value is None:
            return A.ActionResponseNormal(iap, result).encode()
        reply = A.ActionResponseNormal(iap, result, A.GetDataResult.of_data(value)).encode()
        if len(reply) > assoc.max_pdu_size:
            # ACTION block transfer is not offered (conformance): the method ran, but
            # its return value cannot be delivered.
            return A.ActionResponseNormal(
                iap, R.ACTION_OTHER_REASON,
                A.GetDataResult.of_error(R.OTHER_REASON)).encode()
        return reply

    def _invoke(self, assoc, request):
        desc = request.cosem_method_descriptor
        obj, error = self._resolve(assoc, desc.class_id, desc.instance_id)
        if error is not None:
            return error, None      # Action-Result shares these codes (results.py)
        method = desc.method_id
        if method < 1 or method > obj.method_count:
            return R.ACTION_OBJECT_UNDEFINED, None
        if not self.server.logical_device.method_access(assoc.client_sap, obj, method):
            return R.ACTION_READ_WRITE_DENIED, None
        try:
            value = obj.action(method, request.method_invocation_parameters,
                               self._context(assoc))
            return R.ACTION_SUCCESS, value
        except ActionError as err:
            return err.code, None
        except DataAccessError as err:
            return err.code, None
        except Exception:
            return R.ACTION_OTHER_REASON, None


def _long_set_values(long_set):
    """The values a long SET carried: one Data, or (with-list) a SEQUENCE OF Data with
    one value per descriptor (Green Book 9.3, SET with block transfer). None if not."""
    buf = bytes(long_set.received)
    try:
        if not long_set.with_list:
            return [axdr.decode_all(buf)]
        count, offset = axdr.decode_length(buf, 0)
        if count != len(long_set.items):
            return None
        values = []
        for _ in range(count):
            value, offset = axdr.decode(buf, offset)
            values.append(value)
    except axdr.AxdrError:
        return None
    return values if offset == len(buf) else None


def _last_set_response(long_set, iap, result, block_number):
    if long_set.with_list:
        return A.SetResponseLastDatablockWithList(iap, [result] * len(long_set.items),
                                                  block_number).encode()
    return A.SetResponseLastDatablock(iap, result, block_number).encode()


def _block_payload_size(max_pdu_size, remaining):
    """Bytes of raw-data that fit one Get-Response-With-Datablock of `max_pdu_size`."""
    # C4 02 iap last-block(1) block-number(4) choice(1) = 9 bytes, then the
    # A-XDR length of the raw-data octet string (1, 2 or 3 bytes here).
    size = min(remaining, max_pdu_size - 10)
    while size > 0 and 9 + len(axdr.encode_length(size)) + size > max_pdu_size:
        size -= 1
    return size


_HANDLERS = {
    A.GetRequestNormal: DlmsSession._get_normal,
    A.GetRequestNext: DlmsSession._get_next,
    A.GetRequestWithList: DlmsSession._get_with_list,
    A.SetRequestNormal: DlmsSession._set_normal,
    A.SetRequestWithList: DlmsSession._set_with_list,
    A.SetRequestWithFirstDatablock: DlmsSession._set_first_block,
    A.SetRequestWithDatablock: DlmsSession._set_next_block,
    A.SetRequestWithListAndFirstDatablock: DlmsSession._set_list_first_block,
    A.ActionRequestNormal: DlmsSession._action_normal,
}


def _needed_conformance(request):
    if isinstance(request, A.GetRequestNormal):
        need = C.CONFORMANCE_GET
        if request.access_selection is not None:
            need |= C.CONFORMANCE_SELECTIVE_ACCESS
        return need
    if isinstance(request, A.GetRequestNext):
        return C.CONFORMANCE_GET | C.CONFORMANCE_BLOCK_TRANSFER_WITH_GET_OR_READ
    if isinstance(request, A.GetRequestWithList):
        return C.CONFORMANCE_GET | C.CONFORMANCE_MULTIPLE_REFERENCES | _list_selection(request)
    if isinstance(request, A.SetRequestNormal):
        return C.CONFORMANCE_SET
    if isinstance(request, A.SetRequestWithList):
        return C.CONFORMANCE_SET | C.CONFORMANCE_MULTIPLE_REFERENCES
    if isinstance(request, (A.SetRequestWithFirstDatablock, A.SetRequestWithDatablock)):
        return C.CONFORMANCE_SET | C.CONFORMANCE_BLOCK_TRANSFER_WITH_SET_OR_WRITE
    if isinstance(request, A.SetRequestWithListAndFirstDatablock):
        return (C.CONFORMANCE_SET | C.CONFORMANCE_BLOCK_TRANSFER_WITH_SET_OR_WRITE
                | C.CONFORMANCE_MULTIPLE_REFERENCES)
    if isinstance(request, A.ActionRequestNormal):
        return C.CONFORMANCE_ACTION
    return 0


def _list_selection(request):
    for item in request.attribute_descriptor_list:
        if item.access_selection is not None:
            return C.CONFORMANCE_SELECTIVE_ACCESS
    return 0


# --- association helpers -------------------------------------------------------------

def _aare_rejected(context, diagnostic, user_information=None):
    return C.Aare(context, C.RESULT_REJECTED_PERMANENT, diagnostic,
                  user_information=user_information).encode()


def _authenticate(aarq, config):
    """DIAG_NULL when the AARQ meets the client's security level, else the diagnostic."""
    mechanism = aarq.mechanism_name
    if config.authentication == AUTH_LOWEST:
        if mechanism is None or mechanism == C.MECHANISM_LOWEST:
            return C.DIAG_NULL
        return C.DIAG_AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED
    if config.authentication != AUTH_LOW:
        return C.DIAG_AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED
    if mechanism is None:
        return C.DIAG_AUTHENTICATION_MECHANISM_NAME_REQUIRED
    if mechanism != C.MECHANISM_LOW:
        return C.DIAG_AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED
    password = aarq.calling_authentication_value
    if password is None or config.secret is None or not _same(password, config.secret):
        return C.DIAG_AUTHENTICATION_FAILURE
    return C.DIAG_NULL


def _same(a, b):
    # compares every byte whatever the first mismatch: the reply time does not tell
    # a password guesser how many leading bytes were right
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def _initiate_request(aarq):
    if aarq.user_information is None:
        return None
    try:
        pdu = C.decode_user_information(aarq.user_information)
    except C.AcseError:
        return None
    return pdu if isinstance(pdu, C.InitiateRequest) else None
