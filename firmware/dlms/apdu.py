"""xDLMS APDUs of the LN referencing services: encode and strict decode.

Layouts from DLMS UA 1000-2 Green Book, 9.5 "Abstract syntax of COSEM APDUs" (ASN.1)
encoded with A-XDR (IEC 61334-6). Field names follow the ASN.1 with '-' -> '_'.

API
---
Every APDU is a plain class with the ASN.1 fields as attributes, ``encode() -> bytes``,
``encode_into(out: bytearray)``,
``==`` (field by field) and ``fields() -> dict``. ``decode_apdu(buf) -> apdu object``
dispatches on the tag and CHOICE bytes and raises ``ApduError(offset, reason)`` on
truncation, trailing bytes, an unknown tag or choice, or bad embedded Data (A-XDR
errors are re-raised as ApduError with the absolute offset). It never raises anything
else, whatever the input. ``encode()`` raises ValueError for an out-of-range field
and ``axdr.AxdrError`` for a bad embedded Data value.

Building blocks:
- ``AttributeDescriptor(class_id, instance_id, attribute_id)`` (Cosem-Attribute-Descriptor:
  Unsigned16, octet-string(6), Integer8) and ``MethodDescriptor(class_id, instance_id,
  method_id)``.
- ``SelectiveAccess(access_selector, access_parameters)``: access_parameters is a Data value.
- ``DescriptorWithSelection(cosem_attribute_descriptor, access_selection=None)``.
- ``GetDataResult(data=None, data_access_result=None)``: exactly one is set
  (``GetDataResult.of_data(v)``, ``GetDataResult.of_error(code)``).
- invoke-id-and-priority is one byte: ``invoke_id_and_priority(invoke_id, confirmed=True,
  high_priority=False)``, ``invoke_id(b)``, ``is_confirmed(b)``, ``is_high_priority(b)``.
  Long-Invoke-Id-And-Priority (Data-Notification) is a uint32:
  ``long_invoke_id_and_priority(...)``.

APDUs (tag, choice) -> class(fields):
- C0 01 GetRequestNormal(invoke_id_and_priority, cosem_attribute_descriptor, access_selection=None)
- C0 02 GetRequestNext(invoke_id_and_priority, block_number)
- C0 03 GetRequestWithList(invoke_id_and_priority, attribute_descriptor_list)  # [DescriptorWithSelection]
- C4 01 GetResponseNormal(invoke_id_and_priority, result)  # GetDataResult
- C4 02 GetResponseWithDatablock(invoke_id_and_priority, last_block, block_number,
        raw_data=None, data_access_result=None)
- C4 03 GetResponseWithList(invoke_id_and_priority, result)  # [GetDataResult]
- C1 01 SetRequestNormal(invoke_id_and_priority, cosem_attribute_descriptor, value, access_selection=None)
- C1 02 SetRequestWithFirstDatablock(invoke_id_and_priority, cosem_attribute_descriptor,
        last_block, block_number, raw_data, access_selection=None)
- C1 03 SetRequestWithDatablock(invoke_id_and_priority, last_block, block_number, raw_data)
- C1 04 SetRequestWithList(invoke_id_and_priority, attribute_descriptor_list, value_list)
- C1 05 SetRequestWithListAndFirstDatablock(invoke_id_and_priority, attribute_descriptor_list,
        last_block, block_number, raw_data)
- C5 01 SetResponseNormal(invoke_id_and_priority, result)
- C5 02 SetResponseDatablock(invoke_id_and_priority, block_number)
- C5 03 SetResponseLastDatablock(invoke_id_and_priority, result, block_number)
- C5 04 SetResponseLastDatablockWithList(invoke_id_and_priority, result, block_number)  # result: [int]
- C5 05 SetResponseWithList(invoke_id_and_priority, result)  # [int]
- C3 01 ActionRequestNormal(invoke_id_and_priority, cosem_method_descriptor,
        method_invocation_parameters=None)
- C7 01 ActionResponseNormal(invoke_id_and_priority, result, return_parameters=None)
        # return_parameters: GetDataResult or None
- D8    ExceptionResponse(state_error, service_error, invocation_counter=None)
- 0F    DataNotification(long_invoke_id_and_priority, date_time, notification_body)
        # date_time: b'' (absent) or 12 bytes

Note: the Green Book numbers Set-Request-With-List 4 (C1 04) and
Set-Request-With-Datablock 3 (C1 03); Set-Response-With-List is 5.
"""

from struct import pack

from firmware.dlms.record import Record
from firmware.dlms import axdr

# APDU tags (Green Book 9.5, XDLMS-APDU CHOICE)
GET_REQUEST = 0xC0
SET_REQUEST = 0xC1
ACTION_REQUEST = 0xC3
GET_RESPONSE = 0xC4
SET_RESPONSE = 0xC5
ACTION_RESPONSE = 0xC7
EXCEPTION_RESPONSE = 0xD8
DATA_NOTIFICATION = 0x0F

UINT32_MAX = 0xFFFFFFFF


class ApduError(Exception):
    """A malformed or unsupported APDU: ``offset`` into the buffer and ``reason``."""

    def __init__(self, offset, reason):
        super().__init__(offset, reason)
        self.offset = offset
        self.reason = reason

    def __str__(self):
        return "apdu: offset %d: %s" % (self.offset, self.reason)


# --- invoke-id-and-priority (Green Book 9.5: Invoke-Id-And-Priority ::= BIT STRING (SIZE(8)))
# bits 0-3 invoke-id, bit 6 service-class (1 confirmed), bit 7 priority (1 high)

def invoke_id_and_priority(invoke_id, confirmed=True, high_priority=False):
    if not 0 <= invoke_id <= 15:
        raise ValueError("invoke-id out of range 0..15")
    b = invoke_id
    if confirmed:
        b |= 0x40
    if high_priority:
        b |= 0x80
    return b


def invoke_id(iap):
    return iap & 0x0F


def is_confirmed(iap):
    return bool(iap & 0x40)


def is_high_priority(iap):
    return bool(iap & 0x80)


# Long-Invoke-Id-And-Priority ::= BIT STRING (SIZE(32)): bits 0-23 long-invoke-id,
# 28 self-descriptive, 29 processing-option, 30 service-class, 31 priority.

def long_invoke_id_and_priority(long_invoke_id, confirmed=False, high_priority=False,
                                self_descriptive=False, break_on_error=False):
    if not 0 <= long_invoke_id <= 0xFFFFFF:
        raise ValueError("long-invoke-id out of range")
    v = long_invoke_id
    if self_descriptive:
        v |= 0x10000000
    if break_on_error:
        v |= 0x20000000
    if confirmed:
        v |= 0x40000000
    if high_priority:
        v |= 0x80000000
    return v


# --- byte writing helpers (range-checked: MicroPython's struct is not)

def _check(value, lo, hi, name):
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or value > hi:
        raise ValueError("%s out of range: %r" % (name, value))


def _u8(out, v, name):
    _check(v, 0, 255, name)
    out.append(v)


def _u16(out, v, name):
    _check(v, 0, 0xFFFF, name)
    out.append(v >> 8)
    out.append(v & 0xFF)


def _u32(out, v, name):
    _check(v, 0, UINT32_MAX, name)
    out.extend(v.to_bytes(4, "big"))


def _i8(out, v, name):
    _check(v, -128, 127, name)
    out.append(v & 0xFF)


def _bool(out, v):
    out.append(1 if v else 0)


def _octets(out, b, name):
    if not isinstance(b, (bytes, bytearray)):
        raise ValueError("%s must be bytes" % name)
    out.extend(axdr.encode_length(len(b)))
    out.extend(b)


def _data(out, value):
    axdr.encode_into(out, value)


def _count(out, items, name):
    if not isinstance(items, (list, tuple)):
        raise ValueError("%s must be a list" % name)
    out.extend(axdr.encode_length(len(items)))


class _Reader:
    """Cursor over an APDU; every read is bounded and raises ApduError."""

    def __init__(self, buf, pos=0):
        self.buf = buf
        self.pos = pos

    def need(self, n, what):
        if self.pos + n > len(self.buf):
            raise ApduError(self.pos, "truncated %s: need %d bytes, have %d"
                            % (what, n, len(self.buf) - self.pos))

    def u8(self, what):
        p = self.pos
        if p >= len(self.buf):
            self.need(1, what)  # raises, with the same reason as every other read
        self.pos = p + 1
        return self.buf[p]

    def u16(self, what):
        self.need(2, what)
        p = self.pos
        self.pos += 2
        return (self.buf[p] << 8) | self.buf[p + 1]

    def u32(self, what):
        self.need(4, what)
        p = self.pos
        self.pos += 4
        return int.from_bytes(bytes(self.buf[p:p + 4]), "big")

    def i8(self, what):
        v = self.u8(what)
        return v - 256 if v > 127 else v

    def boolean(self, what):
        at = self.pos
        v = self.u8(what)
        if v > 1:
            # A-XDR BOOLEAN: any non-zero is TRUE, but only 0/1 re-encode identically
            raise ApduError(at, "%s: boolean must be 0 or 1, got %d" % (what, v))
        return v == 1

    def length(self, what):
        at = self.pos
        try:
            n, self.pos = axdr.decode_length(self.buf, self.pos)
        except axdr.AxdrError as e:
            raise ApduError(e.offset, "%s length: %s" % (what, e.reason))
        except (IndexError, ValueError):
            raise ApduError(at, "bad %s length" % what)
        return n

    def octets(self, what):
        at = self.pos
        n = self.length(what)
        if n > len(self.buf) - self.pos:
            raise ApduError(at, "%s length %d exceeds the %d bytes left"
                            % (what, n, len(self.buf) - self.pos))
        p = self.pos
        self.pos += n
        return bytes(self.buf[p:p + n])

    def count(self, what, min_item_size=1):
        at = self.pos
        n = self.length(what)
        if n * min_item_size > len(self.buf) - self.pos:
            raise ApduError(at, "%s count %d cannot fit in the %d bytes left"
                            % (what, n, len(self.buf) - self.pos))
        return n

    def data(self, what):
        at = self.pos
        if at >= len(self.buf):
            raise ApduError(at, "truncated %s: missing Data" % what)
        try:
            value, self.pos = axdr.decode(self.buf, self.pos)
        except axdr.AxdrError as e:
            off = e.offset if isinstance(e.offset, int) else at
            raise ApduError(off, "%s: %s" % (what, e.reason))
        return value

    def optional_flag(self, what):
        at = self.pos
        v = self.u8(what)
        if v > 1:
            raise ApduError(at, "%s: optional flag must be 0 or 1, got %d" % (what, v))
        return v == 1

    def end(self):
        if self.pos != len(self.buf):
            raise ApduError(self.pos, "%d trailing bytes" % (len(self.buf) - self.pos))


# --- Cosem-Attribute-Descriptor / Cosem-Method-Descriptor (Green Book 9.5)

def _instance_id(out, inst):
    if not isinstance(inst, (bytes, bytearray)) or len(inst) != 6:
        raise ValueError("instance-id must be 6 bytes")
    out.extend(inst)


def _descriptor_into(out, class_id, instance_id, index, index_name):
    """class-id, instance-id and the attribute or method index: in one pack() when all
    three are plainly valid, else each checked in turn (and the first fault raised)."""
    if (type(class_id) is int and 0 <= class_id <= 0xFFFF and type(instance_id) is bytes
            and len(instance_id) == 6 and type(index) is int and -128 <= index <= 127):
        out += pack(">H6sb", class_id, instance_id, index)
        return
    _u16(out, class_id, "class-id")
    _instance_id(out, instance_id)
    _i8(out, index, index_name)


class AttributeDescriptor(Record):
    FIELDS = ("class_id", "instance_id", "attribute_id")

    def __init__(self, class_id, instance_id, attribute_id):
        self.class_id = class_id
        self.instance_id = instance_id
        self.attribute_id = attribute_id

    def encode_into(self, out):
        _descriptor_into(out, self.class_id, self.instance_id, self.attribute_id,
                         "attribute-id")

    @staticmethod
    def read(r):
        class_id = r.u16("class-id")
        r.need(6, "instance-id")
        inst = bytes(r.buf[r.pos:r.pos + 6])
        r.pos += 6
        return AttributeDescriptor(class_id, inst, r.i8("attribute-id"))


class MethodDescriptor(Record):
    FIELDS = ("class_id", "instance_id", "method_id")

    def __init__(self, class_id, instance_id, method_id):
        self.class_id = class_id
        self.instance_id = instance_id
        self.method_id = method_id

    def encode_into(self, out):
        _descriptor_into(out, self.class_id, self.instance_id, self.method_id, "method-id")

    @staticmethod
    def read(r):
        class_id = r.u16("class-id")
        r.need(6, "instance-id")
        inst = bytes(r.buf[r.pos:r.pos + 6])
        r.pos += 6
        return MethodDescriptor(class_id, inst, r.i8("method-id"))


class SelectiveAccess(Record):
    """Selective-Access-Descriptor ::= SEQUENCE { access-selector Unsigned8,
    access-parameters Data }"""

    FIELDS = ("access_selector", "access_parameters")

    def __init__(self, access_selector, access_parameters):
        self.access_selector = access_selector
        self.access_parameters = access_parameters

    def encode_into(self, out):
        _u8(out, self.access_selector, "access-selector")
        _data(out, self.access_parameters)

    @staticmethod
    def read(r):
        sel = r.u8("access-selector")
        return SelectiveAccess(sel, r.data("access-parameters"))


def _write_selection(out, sel):
    # access-selection Selective-Access-Descriptor OPTIONAL: A-XDR presence byte
    if sel is None:
        out.append(0)
    else:
        out.append(1)
        sel.encode_into(out)


def _read_selection(r):
    if r.optional_flag("access-selection"):
        return SelectiveAccess.read(r)
    return None


class DescriptorWithSelection(Record):
    """Cosem-Attribute-Descriptor-With-Selection (GET/SET with-list)."""

    FIELDS = ("cosem_attribute_descriptor", "access_selection")

    def __init__(self, cosem_attribute_descriptor, access_selection=None):
        self.cosem_attribute_descriptor = cosem_attribute_descriptor
        self.access_selection = access_selection

    def encode_into(self, out):
        self.cosem_attribute_descriptor.encode_into(out)
        _write_selection(out, self.access_selection)

    @staticmethod
    def read(r):
        desc = AttributeDescriptor.read(r)
        return DescriptorWithSelection(desc, _read_selection(r))


def _write_descriptor_list(out, items):
    _count(out, items, "attribute-descriptor-list")
    for item in items:
        item.encode_into(out)


def _read_descriptor_list(r):
    # a descriptor with selection is at least 10 bytes (2 + 6 + 1 + presence)
    n = r.count("attribute-descriptor-list", 10)
    items = []
    for _ in range(n):
        items.append(DescriptorWithSelection.read(r))
    return items


class GetDataResult(Record):
    """Get-Data-Result ::= CHOICE { data [0] Data, data-access-result [1] Data-Access-Result }"""

    FIELDS = ("data", "data_access_result")

    def __init__(self, data=None, data_access_result=None):
        self.data = data
        self.data_access_result = data_access_result

    @staticmethod
    def of_data(value):
        return GetDataResult(data=value)

    @staticmethod
    def of_error(code):
        return GetDataResult(data_access_result=code)

    def encode_into(self, out):
        if (self.data is None) == (self.data_access_result is None):
            raise ValueError("Get-Data-Result needs exactly one of data, data-access-result")
        if self.data is not None:
            out.append(0)
            _data(out, self.data)
        else:
            out.append(1)
            _u8(out, self.data_access_result, "data-access-result")

    @staticmethod
    def read(r):
        at = r.pos
        choice = r.u8("Get-Data-Result choice")
        if choice == 0:
            return GetDataResult(data=r.data("Get-Data-Result data"))
        if choice == 1:
            return GetDataResult(data_access_result=r.u8("data-access-result"))
        raise ApduError(at, "unknown Get-Data-Result choice %d" % choice)


def _write_datablock_sa(out, last_block, block_number, raw_data):
    # DataBlock-SA ::= SEQUENCE { last-block BOOLEAN, block-number Unsigned32,
    #   raw-data OCTET STRING }
    _bool(out, last_block)
    _u32(out, block_number, "block-number")
    _octets(out, raw_data, "raw-data")


def _read_datablock_sa(r):
    last = r.boolean("last-block")
    num = r.u32("block-number")
    return last, num, r.octets("raw-data")


class _Apdu(Record):
    TAG = 0
    CHOICE = None

    def encode(self):
        out = bytearray()
        self.encode_into(out)
        return bytes(out)

    def encode_into(self, out):
        """Append the APDU to ``out`` (a bytearray), e.g. behind a frame header."""
        out.append(self.TAG)
        if self.CHOICE is not None:
            out.append(self.CHOICE)
        self.encode_body(out)


# --- GET (Green Book 9.5: Get-Request, Get-Response)

class GetRequestNormal(_Apdu):
    TAG = GET_REQUEST
    CHOICE = 1
    FIELDS = ("invoke_id_and_priority", "cosem_attribute_descriptor", "access_selection")

    def __init__(self, invoke_id_and_priority, cosem_attribute_descriptor, access_selection=None):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.cosem_attribute_descriptor = cosem_attribute_descriptor
        self.access_selection = access_selection

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        self.cosem_attribute_descriptor.encode_into(out)
        _write_selection(out, self.access_selection)

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        desc = AttributeDescriptor.read(r)
        return GetRequestNormal(iap, desc, _read_selection(r))


class GetRequestNext(_Apdu):
    TAG = GET_REQUEST
    CHOICE = 2
    FIELDS = ("invoke_id_and_priority", "block_number")

    def __init__(self, invoke_id_and_priority, block_number):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.block_number = block_number

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _u32(out, self.block_number, "block-number")

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        return GetRequestNext(iap, r.u32("block-number"))


class GetRequestWithList(_Apdu):
    TAG = GET_REQUEST
    CHOICE = 3
    FIELDS = ("invoke_id_and_priority", "attribute_descriptor_list")

    def __init__(self, invoke_id_and_priority, attribute_descriptor_list):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.attribute_descriptor_list = list(attribute_descriptor_list)

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _write_descriptor_list(out, self.attribute_descriptor_list)

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        return GetRequestWithList(iap, _read_descriptor_list(r))


class GetResponseNormal(_Apdu):
    TAG = GET_RESPONSE
    CHOICE = 1
    FIELDS = ("invoke_id_and_priority", "result")

    def __init__(self, invoke_id_and_priority, result):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.result = result

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        self.result.encode_into(out)

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        return GetResponseNormal(iap, GetDataResult.read(r))


class GetResponseWithDatablock(_Apdu):
    """DataBlock-G ::= SEQUENCE { last-block BOOLEAN, block-number Unsigned32,
    result CHOICE { raw-data [0] OCTET STRING, data-access-result [1] Data-Access-Result } }"""

    TAG = GET_RESPONSE
    CHOICE = 2
    FIELDS = ("invoke_id_and_priority", "last_block", "block_number", "raw_data",
              "data_access_result")

    def __init__(self, invoke_id_and_priority, last_block, block_number, raw_data=None,
                 data_access_result=None):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.last_block = bool(last_block)
        self.block_number = block_number
        self.raw_data = None if raw_data is None else bytes(raw_data)
        self.data_access_result = data_access_result

    def encode_body(self, out):
        if (self.raw_data is None) == (self.data_access_result is None):
            raise ValueError("DataBlock-G needs exactly one of raw-data, data-access-result")
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _bool(out, self.last_block)
        _u32(out, self.block_number, "block-number")
        if self.raw_data is not None:
            out.append(0)
            _octets(out, self.raw_data, "raw-data")
        else:
            out.append(1)
            _u8(out, self.data_access_result, "data-access-result")

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        last = r.boolean("last-block")
        num = r.u32("block-number")
        at = r.pos
        choice = r.u8("DataBlock-G result choice")
        if choice == 0:
            return GetResponseWithDatablock(iap, last, num, raw_data=r.octets("raw-data"))
        if choice == 1:
            return GetResponseWithDatablock(iap, last, num,
                                            data_access_result=r.u8("data-access-result"))
        raise ApduError(at, "unknown DataBlock-G result choice %d" % choice)


class GetResponseWithList(_Apdu):
    TAG = GET_RESPONSE
    CHOICE = 3
    FIELDS = ("invoke_id_and_priority", "result")

    def __init__(self, invoke_id_and_priority, result):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.result = list(result)

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _count(out, self.result, "result")
        for item in self.result:
            item.encode_into(out)

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        n = r.count("result", 2)
        items = []
        for _ in range(n):
            items.append(GetDataResult.read(r))
        return GetResponseWithList(iap, items)


# --- SET (Green Book 9.5: Set-Request, Set-Response)

class SetRequestNormal(_Apdu):
    TAG = SET_REQUEST
    CHOICE = 1
    FIELDS = ("invoke_id_and_priority", "cosem_attribute_descriptor", "access_selection", "value")

    def __init__(self, invoke_id_and_priority, cosem_attribute_descriptor, value,
                 access_selection=None):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.cosem_attribute_descriptor = cosem_attribute_descriptor
        self.access_selection = access_selection
        self.value = value

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        self.cosem_attribute_descriptor.encode_into(out)
        _write_selection(out, self.access_selection)
        _data(out, self.value)

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        desc = AttributeDescriptor.read(r)
        sel = _read_selection(r)
        return SetRequestNormal(iap, desc, r.data("value"), sel)


class SetRequestWithFirstDatablock(_Apdu):
    TAG = SET_REQUEST
    CHOICE = 2
    FIELDS = ("invoke_id_and_priority", "cosem_attribute_descriptor", "access_selection",
              "last_block", "block_number", "raw_data")

    def __init__(self, invoke_id_and_priority, cosem_attribute_descriptor, last_block,
                 block_number, raw_data, access_selection=None):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.cosem_attribute_descriptor = cosem_attribute_descriptor
        self.access_selection = access_selection
        self.last_block = bool(last_block)
        self.block_number = block_number
        self.raw_data = bytes(raw_data)

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        self.cosem_attribute_descriptor.encode_into(out)
        _write_selection(out, self.access_selection)
        _write_datablock_sa(out, self.last_block, self.block_number, self.raw_data)

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        desc = AttributeDescriptor.read(r)
        sel = _read_selection(r)
        last, num, raw = _read_datablock_sa(r)
        return SetRequestWithFirstDatablock(iap, desc, last, num, raw, sel)


class SetRequestWithDatablock(_Apdu):
    TAG = SET_REQUEST
    CHOICE = 3
    FIELDS = ("invoke_id_and_priority", "last_block", "block_number", "raw_data")

    def __init__(self, invoke_id_and_priority, last_block, block_number, raw_data):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.last_block = bool(last_block)
        self.block_number = block_number
        self.raw_data = bytes(raw_data)

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _write_datablock_sa(out, self.last_block, self.block_number, self.raw_data)

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        last, num, raw = _read_datablock_sa(r)
        return SetRequestWithDatablock(iap, last, num, raw)


class SetRequestWithList(_Apdu):
    TAG = SET_REQUEST
    CHOICE = 4
    FIELDS = ("invoke_id_and_priority", "attribute_descriptor_list", "value_list")

    def __init__(self, invoke_id_and_priority, attribute_descriptor_list, value_list):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.attribute_descriptor_list = list(attribute_descriptor_list)
        self.value_list = list(value_list)

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _write_descriptor_list(out, self.attribute_descriptor_list)
        _count(out, self.value_list, "value-list")
        for v in self.value_list:
            _data(out, v)

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        descs = _read_descriptor_list(r)
        n = r.count("value-list", 1)
        values = []
        for _ in range(n):
            values.append(r.data("value-list"))
        return SetRequestWithList(iap, descs, values)


class SetRequestWithListAndFirstDatablock(_Apdu):
    TAG = SET_REQUEST
    CHOICE = 5
    FIELDS = ("invoke_id_and_priority", "attribute_descriptor_list", "last_block",
              "block_number", "raw_data")

    def __init__(self, invoke_id_and_priority, attribute_descriptor_list, last_block,
                 block_number, raw_data):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.attribute_descriptor_list = list(attribute_descriptor_list)
        self.last_block = bool(last_block)
        self.block_number = block_number
        self.raw_data = bytes(raw_data)

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _write_descriptor_list(out, self.attribute_descriptor_list)
        _write_datablock_sa(out, self.last_block, self.block_number, self.raw_data)

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        descs = _read_descriptor_list(r)
        last, num, raw = _read_datablock_sa(r)
        return SetRequestWithListAndFirstDatablock(iap, descs, last, num, raw)


class SetResponseNormal(_Apdu):
    TAG = SET_RESPONSE
    CHOICE = 1
    FIELDS = ("invoke_id_and_priority", "result")

    def __init__(self, invoke_id_and_priority, result):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.result = result

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _u8(out, self.result, "data-access-result")

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        return SetResponseNormal(iap, r.u8("data-access-result"))


class SetResponseDatablock(_Apdu):
    TAG = SET_RESPONSE
    CHOICE = 2
    FIELDS = ("invoke_id_and_priority", "block_number")

    def __init__(self, invoke_id_and_priority, block_number):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.block_number = block_number

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _u32(out, self.block_number, "block-number")

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        return SetResponseDatablock(iap, r.u32("block-number"))


class SetResponseLastDatablock(_Apdu):
    TAG = SET_RESPONSE
    CHOICE = 3
    FIELDS = ("invoke_id_and_priority", "result", "block_number")

    def __init__(self, invoke_id_and_priority, result, block_number):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.result = result
        self.block_number = block_number

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _u8(out, self.result, "data-access-result")
        _u32(out, self.block_number, "block-number")

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        res = r.u8("data-access-result")
        return SetResponseLastDatablock(iap, res, r.u32("block-number"))


def _write_results(out, results):
    _count(out, results, "result")
    for code in results:
        _u8(out, code, "data-access-result")


def _read_results(r):
    n = r.count("result", 1)
    res = []
    for _ in range(n):
        res.append(r.u8("data-access-result"))
    return res


class SetResponseLastDatablockWithList(_Apdu):
    TAG = SET_RESPONSE
    CHOICE = 4
    FIELDS = ("invoke_id_and_priority", "result", "block_number")

    def __init__(self, invoke_id_and_priority, result, block_number):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.result = list(result)
        self.block_number = block_number

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _write_results(out, self.result)
        _u32(out, self.block_number, "block-number")

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        res = _read_results(r)
        return SetResponseLastDatablockWithList(iap, res, r.u32("block-number"))


class SetResponseWithList(_Apdu):
    TAG = SET_RESPONSE
    CHOICE = 5
    FIELDS = ("invoke_id_and_priority", "result")

    def __init__(self, invoke_id_and_priority, result):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.result = list(result)

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _write_results(out, self.result)

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        return SetResponseWithList(iap, _read_results(r))


# --- ACTION (Green Book 9.5: Action-Request, Action-Response)

class ActionRequestNormal(_Apdu):
    TAG = ACTION_REQUEST
    CHOICE = 1
    FIELDS = ("invoke_id_and_priority", "cosem_method_descriptor", "method_invocation_parameters")

    def __init__(self, invoke_id_and_priority, cosem_method_descriptor,
                 method_invocation_parameters=None):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.cosem_method_descriptor = cosem_method_descriptor
        self.method_invocation_parameters = method_invocation_parameters

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        self.cosem_method_descriptor.encode_into(out)
        if self.method_invocation_parameters is None:
            out.append(0)
        else:
            out.append(1)
            _data(out, self.method_invocation_parameters)

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        desc = MethodDescriptor.read(r)
        params = None
        if r.optional_flag("method-invocation-parameters"):
            params = r.data("method-invocation-parameters")
        return ActionRequestNormal(iap, desc, params)


class ActionResponseNormal(_Apdu):
    """Action-Response-With-Optional-Data ::= SEQUENCE { result Action-Result,
    return-parameters Get-Data-Result OPTIONAL }"""

    TAG = ACTION_RESPONSE
    CHOICE = 1
    FIELDS = ("invoke_id_and_priority", "result", "return_parameters")

    def __init__(self, invoke_id_and_priority, result, return_parameters=None):
        self.invoke_id_and_priority = invoke_id_and_priority
        self.result = result
        self.return_parameters = return_parameters

    def encode_body(self, out):
        _u8(out, self.invoke_id_and_priority, "invoke-id-and-priority")
        _u8(out, self.result, "action-result")
        if self.return_parameters is None:
            out.append(0)
        else:
            out.append(1)
            self.return_parameters.encode_into(out)

    @staticmethod
    def read(r):
        iap = r.u8("invoke-id-and-priority")
        res = r.u8("action-result")
        ret = None
        if r.optional_flag("return-parameters"):
            ret = GetDataResult.read(r)
        return ActionResponseNormal(iap, res, ret)


# --- Exception-Response (Green Book 9.5: ExceptionResponse)

class ExceptionResponse(_Apdu):
    """D8 state-error service-error [Unsigned32 for invocation-counter-error (6)]."""

    TAG = EXCEPTION_RESPONSE
    CHOICE = None
    FIELDS = ("state_error", "service_error", "invocation_counter")

    def __init__(self, state_error, service_error, invocation_counter=None):
        self.state_error = state_error
        self.service_error = service_error
        self.invocation_counter = invocation_counter

    def encode_body(self, out):
        _u8(out, self.state_error, "state-error")
        _u8(out, self.service_error, "service-error")
        if self.service_error == 6:
            if self.invocation_counter is None:
                raise ValueError("invocation-counter-error needs the expected counter")
            _u32(out, self.invocation_counter, "invocation-counter")
        elif self.invocation_counter is not None:
            raise ValueError("invocation-counter only with service-error 6")

    @staticmethod
    def read(r):
        at = r.pos
        state = r.u8("state-error")
        if state not in (1, 2):
            raise ApduError(at, "unknown state-error %d" % state)
        at = r.pos
        service = r.u8("service-error")
        if not 1 <= service <= 6:
            raise ApduError(at, "unknown service-error choice %d" % service)
        counter = None
        if service == 6:
            counter = r.u32("invocation-counter")
        return ExceptionResponse(state, service, counter)


# --- Data-Notification (Green Book 9.5: Data-Notification)

class DataNotification(_Apdu):
    """0F long-invoke-id-and-priority(uint32) date-time(OCTET STRING, length 0 or 12)
    notification-body(Data)."""

    TAG = DATA_NOTIFICATION
    CHOICE = None
    FIELDS = ("long_invoke_id_and_priority", "date_time", "notification_body")

    def __init__(self, long_invoke_id_and_priority, date_time, notification_body):
        self.long_invoke_id_and_priority = long_invoke_id_and_priority
        self.date_time = b"" if date_time is None else bytes(date_time)
        self.notification_body = notification_body

    def encode_body(self, out):
        _u32(out, self.long_invoke_id_and_priority, "long-invoke-id-and-priority")
        if len(self.date_time) not in (0, 12):
            raise ValueError("date-time must be empty or 12 bytes")
        _octets(out, self.date_time, "date-time")
        _data(out, self.notification_body)

    @staticmethod
    def read(r):
        liap = r.u32("long-invoke-id-and-priority")
        at = r.pos
        dt = r.octets("date-time")
        if len(dt) not in (0, 12):
            raise ApduError(at, "date-time length %d, want 0 or 12" % len(dt))
        return DataNotification(liap, dt, r.data("notification-body"))


_BY_TAG_CHOICE = {
    (GET_REQUEST, 1): GetRequestNormal,
    (GET_REQUEST, 2): GetRequestNext,
    (GET_REQUEST, 3): GetRequestWithList,
    (GET_RESPONSE, 1): GetResponseNormal,
    (GET_RESPONSE, 2): GetResponseWithDatablock,
    (GET_RESPONSE, 3): GetResponseWithList,
    (SET_REQUEST, 1): SetRequestNormal,
    (SET_REQUEST, 2): SetRequestWithFirstDatablock,
    (SET_REQUEST, 3): SetRequestWithDatablock,
    (SET_REQUEST, 4): SetRequestWithList,
    (SET_REQUEST, 5): SetRequestWithListAndFirstDatablock,
    (SET_RESPONSE, 1): SetResponseNormal,
    (SET_RESPONSE, 2): SetResponseDatablock,
    (SET_RESPONSE, 3): SetResponseLastDatablock,
    (SET_RESPONSE, 4): SetResponseLastDatablockWithList,
    (SET_RESPONSE, 5): SetResponseWithList,
    (ACTION_REQUEST, 1): ActionRequestNormal,
    (ACTION_RESPONSE, 1): ActionResponseNormal,
}

_NO_CHOICE = {
    EXCEPTION_RESPONSE: ExceptionResponse,
    DATA_NOTIFICATION: DataNotification,
}

_CHOICE_TAGS = (GET_REQUEST, GET_RESPONSE, SET_REQUEST, SET_RESPONSE,
                ACTION_REQUEST, ACTION_RESPONSE)


def decode_apdu(buf):
    """Decode one whole APDU; raises ApduError and nothing else."""
    if not isinstance(buf, (bytes, bytearray)):
        buf = bytes(buf)
    r = _Reader(buf)
    tag = r.u8("APDU tag")
    cls = _NO_CHOICE.get(tag)
    if cls is None:
        if tag not in _CHOICE_TAGS:
            raise ApduError(0, "unknown APDU tag 0x%02x" % tag)
        choice = r.u8("APDU choice")
        cls = _BY_TAG_CHOICE.get((tag, choice))
        if cls is None:
            raise ApduError(1, "unsupported choice %d of APDU 0x%02x" % (choice, tag))
    try:
        apdu = cls.read(r)
    except ApduError:
        raise
    except (IndexError, ValueError, TypeError, OverflowError, RuntimeError):
        # a defensive net: the device must never crash on a bad APDU
        raise ApduError(r.pos, "malformed %s" % cls.__name__)
    r.end()
    return apdu
