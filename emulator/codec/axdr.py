"""A-XDR `Data` as a declarative construct codec: the host's independent oracle for
`firmware/dlms/axdr.py` (ARCHITECTURE.md principle 3). It shares no code with the
firmware codec; tests drive both with the same values and demand the same bytes.

Layout (DLMS UA 1000-2 Green Book 9.5 "Data" CHOICE; A-XDR rules of IEC 61334-6):
``Data = tag:uint8 ‖ payload``, the payload chosen by the tag (`TaggedChoice`, a
`Switch` that keeps its tag). Arrays and structures are an A-XDR count then that
many `Data`; a compact-array (Blue Book 4.1.6.1) is a `TypeDescription` then an
octet-string of untagged values laid out by it.

`Data` parses straight into the firmware tuple model of docs/CORE_INTERFACES.md
section 1 (``(tag, payload)``) and builds from it, so host codecs that embed `Data`
get comparable values without a conversion pass.

Nesting is bounded exactly like the firmware (`MAX_DEPTH` = 16 containers): `Data` is
a ladder of levels, each reaching the next through `LazyBound` (`_Level`); the last
level has no container cases. `.compile()` of the top level inlines the whole ladder
into one module. Compiled construct 2.10 reads fixed fields with an unchecked
``io.read(n)`` (a truncated value parses short, a missing boolean parses TRUE), so
the primitives here emit a checked read instead.
"""

import io
import struct

from construct import (
    Bytes, Construct, ConstructError, ExplicitError, FormatField, LazyBound, Pass,
    StreamError, Struct, ValidationError,
)
from construct.core import Flag as _FlagSingleton, stream_write

from emulator.codec.errors import CodecError

__all__ = [
    "AxdrCodecError", "AxdrLength", "Data", "TypeDescription", "TaggedChoice",
    "MAX_DEPTH", "ModelError", "decode", "decode_prefix", "encode", "to_model",
    "from_model",
]

MAX_DEPTH = 16

# Blue Book "Data" CHOICE numbers (kept apart from firmware on purpose).
NULL_DATA, ARRAY, STRUCTURE, BOOLEAN, BIT_STRING = 0, 1, 2, 3, 4
DOUBLE_LONG, DOUBLE_LONG_UNSIGNED = 5, 6
OCTET_STRING, VISIBLE_STRING, UTF8_STRING, BCD = 9, 10, 12, 13
INTEGER, LONG, UNSIGNED, LONG_UNSIGNED, COMPACT_ARRAY = 15, 16, 17, 18, 19
LONG64, LONG64_UNSIGNED, ENUM, FLOAT32, FLOAT64 = 20, 21, 22, 23, 24
DATE_TIME, DATE, TIME, DONT_CARE = 25, 26, 27, 255
RAW = -1


class AxdrCodecError(CodecError):
    layer = "axdr"


# ---------------------------------------------------------------- shared helper code
# Installed here for the interpreted path and emitted into every compiled module, so
# both paths run one definition.

_HELPERS = {
    "read_exact": """
        def axdr_read_exact(io, n):
            data = io.read(n)
            if len(data) != n:
                raise StreamError("truncated: expected %d bytes, found %d" % (n, len(data)))
            return data
    """,
    "parse_length": """
        def axdr_parse_length(io):
            first = io.read(1)
            if not first:
                raise StreamError("truncated: length expected")
            first = first[0]
            if first < 0x80:
                return first
            size = first & 0x7F
            if size == 0 or size > 4:
                raise ValidationError("bad A-XDR length prefix 0x%02x" % first)
            return int.from_bytes(axdr_read_exact(io, size), "big")
    """,
    "length_bytes": """
        def axdr_length_bytes(n):
            if not 0 <= n <= 0xFFFFFFFF:
                raise ValidationError("A-XDR length %r out of range" % (n,))
            if n < 0x80:
                return bytes((n,))
            size = 1 if n <= 0xFF else 2 if n <= 0xFFFF else 3 if n <= 0xFFFFFF else 4
            return bytes((0x80 | size,)) + n.to_bytes(size, "big")
    """,
    "write_exact": """
        def axdr_write_exact(io, obj, n):
            if not isinstance(obj, (bytes, bytearray)) or len(obj) != n:
                raise ValidationError("expected %d bytes, got %r" % (n, obj))
            io.write(obj)
            return obj
    """,
    "write_octets": """
        def axdr_write_octets(io, obj):
            if not isinstance(obj, (bytes, bytearray)):
                raise ValidationError("string payload must be bytes, got %r" % (obj,))
            io.write(axdr_length_bytes(len(obj)))
            io.write(obj)
            return obj
    """,
    "build_items": """
        def axdr_build_items(obj, io, build_item):
            if not isinstance(obj, (list, tuple)):
                raise ValidationError("expected a list, got %r" % (obj,))
            io.write(axdr_length_bytes(len(obj)))
            for item in obj:
                build_item(item)
            return obj
    """,
    "reject": """
        def axdr_reject(reason):
            raise ExplicitError(reason)
    """,
    "check_tag": """
        def axdr_check_tag(obj, tag, count):
            if not isinstance(obj, (list, tuple)) or len(obj) != 2 or obj[0] != tag:
                raise ValidationError("compact-array element %r is not of type %d" % (obj, tag))
            if count is not None:
                if not isinstance(obj[1], (list, tuple)) or len(obj[1]) != count:
                    raise ValidationError("compact-array element %r needs %d entries"
                                          % (obj, count))
            return obj[1]
    """,
    # An array of structures of one shape (a Profile Generic buffer, Blue Book 4.3.6
    # attribute 2: every row the same member tags and octet-string lengths) is read in
    # one pass: the first row's tag/length bytes give the shape; one struct unpacks the
    # tag/length bytes of every row, which must equal the shape's (the tags are checked
    # as the Data CHOICE would), and one unpacks the values. The member layouts are the
    # `SIMPLE_PAYLOADS` constructs' own (`axdr_row_members`, derived from them below).
    # Too few bytes or any other shape: None, and the rows are read one by one, which
    # reports the error if there is one.
    "uniform_rows": """
        axdr_row_layouts = {}

        def axdr_uniform_rows(io, count):
            getbuffer = getattr(io, "getbuffer", None)
            if getbuffer is None:
                return None
            start = io.tell()
            view = getbuffer()
            try:
                rows = axdr_read_rows(view, start, len(view), count)
            finally:
                view.release()
            if rows is None:
                return None
            io.seek(start + rows[1])
            return rows[0]

        def axdr_row_shape(view, pos, end):
            if pos + 2 > end or view[pos] != 2 or not 0 < view[pos + 1] < 0x80:
                return None
            shape = [view[pos + 1]]
            at = pos + 2
            for _ in range(shape[0]):
                if at >= end:
                    return None
                tag = view[at]
                member = axdr_row_members.get(tag)
                if member is None:
                    return None
                size = member[0]
                shape.append(tag)
                if size < 0:
                    if at + 1 >= end or view[at + 1] >= 0x80:
                        return None
                    size = view[at + 1]
                    shape.append(size)
                    at += 1
                at += 1 + size
            return tuple(shape)

        def axdr_row_layout(shape, count):
            headers, heads, values, tags = [], "", "", []
            header, i = bytes((2, shape[0])), 1
            while i < len(shape):
                tag = shape[i]
                size, fmt = axdr_row_members[tag]
                if size < 0:
                    i += 1
                    size = shape[i]
                    header += bytes((tag, size))
                    fmt = "%ds" % size
                else:
                    header += bytes((tag,))
                heads += "%ds%dx" % (len(header), size)
                values += "%dx%s" % (len(header), fmt)
                headers.append(header)
                tags.append(tag)
                header, i = b"", i + 1
            row_size = struct.calcsize(">" + heads)
            return (struct.Struct(">" + heads * count), tuple(headers) * count,
                    struct.Struct(">" + values * count), tuple(tags), row_size * count)

        def axdr_read_rows(view, pos, end, count):
            shape = axdr_row_shape(view, pos, end)
            if shape is None:
                return None
            key = (shape, count)
            layout = axdr_row_layouts.get(key)
            if layout is None:
                if len(axdr_row_layouts) >= 64:
                    axdr_row_layouts.clear()
                layout = axdr_row_layouts[key] = axdr_row_layout(shape, count)
            heads, expected, values, tags, size = layout
            if pos + size > end or heads.unpack_from(view, pos) != expected:
                return None
            it = iter(values.unpack_from(view, pos))
            if len(tags) == 2:
                t0, t1 = tags
                items = [(2, [(t0, a), (t1, b)]) for a, b in zip(it, it)]
            else:
                items = [(2, list(zip(tags, row))) for row in zip(*[it] * len(tags))]
            return items, size
    """,
    # The same shape built in one pass: the first row gives the shape, every row must
    # match it member by member (tag, and length for bytes), then one struct packs the
    # tag/length bytes and the values of every row; struct refuses an out-of-range
    # value. Anything else: None, and the rows are built one by one (which raises the
    # error, if there is one).
    "write_uniform_rows": """
        axdr_row_writers = {}

        def axdr_uniform_rows_bytes(obj):
            first = obj[0]
            if not isinstance(first, (tuple, list)) or len(first) != 2 or first[0] != 2:
                return None
            members = first[1]
            if not isinstance(members, (tuple, list)) or not 0 < len(members) < 0x80:
                return None
            shape = [len(members)]
            for member in members:
                if not isinstance(member, (tuple, list)) or len(member) != 2:
                    return None
                tag, value = member
                spec = axdr_row_members.get(tag) if type(tag) is int else None
                if spec is None:
                    return None
                shape.append(tag)
                if spec[0] < 0:
                    if not isinstance(value, (bytes, bytearray)) or len(value) >= 0x80:
                        return None
                    shape.append(len(value))
            key = (tuple(shape), len(obj))
            writer = axdr_row_writers.get(key)
            if writer is None:
                if len(axdr_row_writers) >= 64:
                    axdr_row_writers.clear()
                writer = axdr_row_writers[key] = axdr_row_writer(key[0], len(obj))
            packer, checks = writer
            args = []
            append = args.append
            for row in obj:
                if not isinstance(row, (tuple, list)) or len(row) != 2 or row[0] != 2:
                    return None
                members = row[1]
                if not isinstance(members, (tuple, list)) or len(members) != len(checks):
                    return None
                for (header, tag, size), member in zip(checks, members):
                    if not isinstance(member, (tuple, list)) or len(member) != 2 \\
                            or member[0] != tag:
                        return None
                    value = member[1]
                    if size is not None and (not isinstance(value, (bytes, bytearray))
                                             or len(value) != size):
                        return None
                    append(header)
                    append(value)
            try:
                return packer.pack(*args)
            except (struct.error, OverflowError, TypeError):
                return None

        def axdr_row_writer(shape, count):
            checks, fmt = [], ""
            header, i = bytes((2, shape[0])), 1
            while i < len(shape):
                tag = shape[i]
                size, code = axdr_row_members[tag]
                if size < 0:
                    i += 1
                    size = shape[i]
                    header += bytes((tag, size))
                    code = "%ds" % size
                else:
                    header += bytes((tag,))
                    if code[-1] != "s":
                        size = None
                fmt += "%ds%s" % (len(header), code)
                checks.append((header, tag, size))
                header, i = b"", i + 1
            return struct.Struct(">" + fmt * count), tuple(checks)
    """,
}
_DEPENDS = {
    "parse_length": ("read_exact",),
    "write_octets": ("length_bytes",),
    "build_items": ("length_bytes",),
}
_namespace = {"StreamError": StreamError, "ValidationError": ValidationError,
              "ExplicitError": ExplicitError, "struct": struct}


def _dedent(source):
    lines = [s for s in source.splitlines() if s.strip()]
    trim = len(lines[0]) - len(lines[0].lstrip())
    return "\n".join(s[trim:] for s in lines)


for _name in _HELPERS:
    exec(_dedent(_HELPERS[_name]), _namespace)
_read_exact = _namespace["axdr_read_exact"]
_parse_length = _namespace["axdr_parse_length"]
_length_bytes = _namespace["axdr_length_bytes"]
_write_exact = _namespace["axdr_write_exact"]
_write_octets = _namespace["axdr_write_octets"]
_check_tag = _namespace["axdr_check_tag"]
_uniform_rows = _namespace["axdr_uniform_rows"]
_uniform_rows_bytes = _namespace["axdr_uniform_rows_bytes"]


def _need(code, *names):
    for name in names:
        for dependency in _DEPENDS.get(name, ()):
            _need(code, dependency)
        code.append(_HELPERS[name])


# ---------------------------------------------------------------- checked primitives

class _AxdrLength(Construct):
    """A-XDR variable length (IEC 61334-6): ``< 0x80`` one byte, else ``0x8N`` and N
    big-endian bytes (N 1..4). Non-minimal forms parse; building is minimal."""

    def _parse(self, stream, context, path):
        return _parse_length(stream)

    def _build(self, obj, stream, context, path):
        head = _length_bytes(obj)
        stream_write(stream, head, len(head), path)
        return obj

    def _emitparse(self, code):
        _need(code, "parse_length")
        return "axdr_parse_length(io)"

    def _emitbuild(self, code):
        _need(code, "length_bytes")
        return "(io.write(axdr_length_bytes(obj)), obj)[1]"


AxdrLength = _AxdrLength()


class _CheckedField(FormatField):
    def _emitparse(self, code):
        fname = "axdr_formatfield_%d" % code.allocateId()
        _need(code, "read_exact")
        code.append("%s = struct.Struct(%r)" % (fname, self.fmtstr))
        return "%s.unpack(axdr_read_exact(io, %d))[0]" % (fname, self.length)


class _CheckedBytes(Bytes):
    def _emitparse(self, code):
        _need(code, "read_exact")
        return "axdr_read_exact(io, %d)" % self.length

    def _emitbuild(self, code):
        _need(code, "write_exact")
        return "axdr_write_exact(io, obj, %d)" % self.length


class _CheckedFlag(type(_FlagSingleton)):
    """boolean: one byte, any non-zero is TRUE; TRUE builds as 0x01."""

    def _emitparse(self, code):
        _need(code, "read_exact")
        return "(axdr_read_exact(io, 1) != b'\\x00')"


class _AxdrOctets(Construct):
    """octet-string / visible-string / utf8-string: A-XDR length ‖ bytes."""

    def _parse(self, stream, context, path):
        return _read_exact(stream, _parse_length(stream))

    def _build(self, obj, stream, context, path):
        return _write_octets(stream, obj)

    def _emitparse(self, code):
        _need(code, "parse_length")
        return "axdr_read_exact(io, axdr_parse_length(io))"

    def _emitbuild(self, code):
        _need(code, "write_octets")
        return "axdr_write_octets(io, obj)"


AxdrOctets = _AxdrOctets()


class _AxdrBitString(Construct):
    """bit-string: A-XDR length in bits ‖ ceil(bits/8) bytes, as ``(count, bytes)``.
    Unused trailing bits parse as 0 (the model keeps them 0) and must be 0 to build."""

    def _parse(self, stream, context, path):
        count = _parse_length(stream)
        size = (count + 7) >> 3
        bits = _read_exact(stream, size)
        unused = (8 - (count & 7)) & 7
        if unused and bits[-1] & ((1 << unused) - 1):
            bits = bits[:-1] + bytes((bits[-1] & (0xFF << unused) & 0xFF,))
        return (count, bits)

    def _build(self, obj, stream, context, path):
        if not isinstance(obj, (tuple, list)) or len(obj) != 2:
            raise ValidationError("bit-string must be (count, bytes): %r" % (obj,), path=path)
        count, bits = obj
        if type(count) is not int or count < 0:
            raise ValidationError("bad bit count %r" % (count,), path=path)
        if not isinstance(bits, (bytes, bytearray)) or len(bits) != (count + 7) >> 3:
            raise ValidationError("%d bits need %d bytes" % (count, (count + 7) >> 3), path=path)
        unused = (8 - (count & 7)) & 7
        if unused and bits[-1] & ((1 << unused) - 1):
            raise ValidationError("unused trailing bits are not 0", path=path)
        head = _length_bytes(count)
        stream_write(stream, head + bytes(bits), len(head) + len(bits), path)
        return obj


AxdrBitString = _AxdrBitString()


class _Reject(Construct):
    """A case that is never valid here, with the reason (compiles, unlike `Error`)."""

    def __init__(self, reason):
        super().__init__()
        self.reason = reason

    def _parse(self, stream, context, path):
        raise ExplicitError(self.reason, path=path)

    def _build(self, obj, stream, context, path):
        raise ExplicitError(self.reason, path=path)

    def _emitparse(self, code):
        _need(code, "reject")
        return "axdr_reject(%r)" % self.reason

    def _emitbuild(self, code):
        _need(code, "reject")
        return "axdr_reject(%r)" % self.reason


# ---------------------------------------------------------------- combinators

class TaggedChoice(Construct):
    """A one-byte tag then ``cases[tag]``: a `Switch` on a leading tag that parses to
    ``(tag, value)`` and builds from it (the A-XDR CHOICE encoding)."""

    def __init__(self, cases, unknown):
        super().__init__()
        self.cases = cases
        self.unknown = unknown  # reason, formatted with the tag

    def _parse(self, stream, context, path):
        tag = _read_exact(stream, 1)[0]
        case = self.cases.get(tag)
        if case is None:
            raise ExplicitError(self.unknown % tag, path=path)
        return (tag, case._parsereport(stream, context, path))

    def _build(self, obj, stream, context, path):
        if not isinstance(obj, (tuple, list)) or len(obj) != 2:
            raise ValidationError("not a (tag, value) pair: %r" % (obj,), path=path)
        tag, value = obj
        case = self.cases.get(tag) if type(tag) is int else None
        if case is None:
            raise ExplicitError(self.unknown % (tag,), path=path)
        stream_write(stream, bytes((tag,)), 1, path)
        case._build(value, stream, context, path)
        return obj

    def _emitparse(self, code):
        # Fixed-size cases are unpacked inside the choice function itself (no call per
        # value); the other cases are lambdas, as construct's own Switch emits them.
        fname = "axdr_choice_%d" % code.allocateId()
        code.append("%s_fixed = {}" % fname)
        code.append("%s_cases = {}" % fname)
        octets = []
        for tag in sorted(self.cases):
            case = self.cases[tag]
            if isinstance(case, _CheckedField):
                code.append("%s_fixed[%d] = struct.Struct(%r)" % (fname, tag, case.fmtstr))
            elif case is AxdrOctets:
                octets.append(tag)
            else:
                code.append("%s_cases[%d] = lambda io, this: %s"
                            % (fname, tag, case._compileparse(code)))
        code.append("%s_octets = frozenset(%r)" % (fname, tuple(octets)))
        _need(code, "parse_length")
        code.append("""
            def %s(io, this):
                tag = io.read(1)
                if not tag:
                    raise StreamError("truncated: data type tag expected")
                tag = tag[0]
                fixed = %s_fixed.get(tag)
                if fixed is not None:
                    data = io.read(fixed.size)
                    if len(data) != fixed.size:
                        raise StreamError("truncated: expected %%d bytes, found %%d"
                                          %% (fixed.size, len(data)))
                    return (tag, fixed.unpack(data)[0])
                if tag in %s_octets:
                    size = io.read(1)
                    if not size or size[0] >= 0x80:
                        io.seek(-len(size), 1)
                        size = axdr_parse_length(io)
                    else:
                        size = size[0]
                    data = io.read(size)
                    if len(data) != size:
                        raise StreamError("truncated: expected %%d bytes, found %%d"
                                          %% (size, len(data)))
                    return (tag, data)
                case = %s_cases.get(tag)
                if case is None:
                    raise ExplicitError(%r %% tag)
                return (tag, case(io, this))
        """ % (fname, fname, fname, fname, self.unknown))
        return "%s(io, this)" % fname

    def _emitbuild(self, code):
        fname = "axdr_choice_build_%d" % code.allocateId()
        code.append("%s_cases = {}" % fname)
        for tag in sorted(self.cases):
            code.append("%s_cases[%d] = lambda obj, io, this: %s"
                        % (fname, tag, self.cases[tag]._compilebuild(code)))
        code.append("""
            def %s(obj, io, this):
                if not isinstance(obj, (tuple, list)) or len(obj) != 2:
                    raise ValidationError("not a (tag, value) pair: %%r" %% (obj,))
                tag = obj[0]
                case = %s_cases.get(tag) if type(tag) is int else None
                if case is None:
                    raise ExplicitError(%r %% (tag,))
                io.write(bytes((tag,)))
                case(obj[1], io, this)
                return obj
        """ % (fname, fname, self.unknown))
        return "%s(obj, io, this)" % fname


class SequenceOf(Construct):
    """A-XDR SEQUENCE OF: an A-XDR element count then the elements, as a list. With
    ``uniform_rows`` (an array of Data whose elements may be structures) an array of
    same-shaped structures of simple values is read in one pass (`axdr_uniform_rows`),
    checked exactly as the element-by-element parse would be."""

    def __init__(self, subcon, uniform_rows=False):
        super().__init__()
        self.subcon = subcon
        self.uniform_rows = uniform_rows

    def _parse(self, stream, context, path):
        count = _parse_length(stream)
        if self.uniform_rows and count > 1:
            items = _uniform_rows(stream, count)
            if items is not None:
                return items
        return [self.subcon._parsereport(stream, context, path) for _ in range(count)]

    def _build(self, obj, stream, context, path):
        if not isinstance(obj, (list, tuple)):
            raise ValidationError("expected a list, got %r" % (obj,), path=path)
        head = _length_bytes(len(obj))
        rows = _uniform_rows_bytes(obj) if self.uniform_rows and len(obj) > 1 else None
        if rows is not None:
            stream_write(stream, head + rows, len(head) + len(rows), path)
            return obj
        stream_write(stream, head, len(head), path)
        for item in obj:
            self.subcon._build(item, stream, context, path)
        return obj

    def _emitparse(self, code):
        _need(code, "parse_length")
        if not self.uniform_rows:
            return "[%s for _ in range(axdr_parse_length(io))]" % self.subcon._compileparse(code)
        _need(code, "uniform_rows")
        code.append("axdr_row_members = %r" % (_ROW_MEMBERS,))
        fname = "axdr_array_%d" % code.allocateId()
        code.append("""
            def %s(io, this):
                count = axdr_parse_length(io)
                if count > 1:
                    items = axdr_uniform_rows(io, count)
                    if items is not None:
                        return items
                return [%s for _ in range(count)]
        """ % (fname, self.subcon._compileparse(code)))
        return "%s(io, this)" % fname

    def _emitbuild(self, code):
        _need(code, "build_items")
        if not self.uniform_rows:
            return "axdr_build_items(obj, io, lambda obj: (%s))" % self.subcon._compilebuild(code)
        _need(code, "write_uniform_rows")
        code.append("axdr_row_members = %r" % (_ROW_MEMBERS,))
        fname = "axdr_array_build_%d" % code.allocateId()
        code.append("""
            def %s(obj, io, this):
                if not isinstance(obj, (list, tuple)):
                    raise ValidationError("expected a list, got %%r" %% (obj,))
                rows = axdr_uniform_rows_bytes(obj) if len(obj) > 1 else None
                if rows is not None:
                    io.write(axdr_length_bytes(len(obj)))
                    io.write(rows)
                    return obj
                return axdr_build_items(obj, io, lambda obj: (%s))
        """ % (fname, self.subcon._compilebuild(code)))
        return "%s(obj, io, this)" % fname


class _Level(LazyBound):
    """`LazyBound` to the next level of a bounded recursion. Compiling the top level
    inlines every level into one module, so a level calls the next one's parser
    directly; interpreted, it behaves as LazyBound."""

    def _emitparse(self, code):
        return self.subconfunc()._compileparse(code)

    def _emitbuild(self, code):
        return self.subconfunc()._compilebuild(code)


# ---------------------------------------------------------------- simple types

#: payload of every simple type, by tag (Green Book 9.5 "Data")
SIMPLE_PAYLOADS = {
    NULL_DATA: Pass,
    BOOLEAN: _CheckedFlag(),
    BIT_STRING: AxdrBitString,
    DOUBLE_LONG: _CheckedField(">", "l"),
    DOUBLE_LONG_UNSIGNED: _CheckedField(">", "L"),
    OCTET_STRING: AxdrOctets,
    VISIBLE_STRING: AxdrOctets,
    UTF8_STRING: AxdrOctets,
    BCD: _CheckedField(">", "B"),
    INTEGER: _CheckedField(">", "b"),
    LONG: _CheckedField(">", "h"),
    UNSIGNED: _CheckedField(">", "B"),
    LONG_UNSIGNED: _CheckedField(">", "H"),
    LONG64: _CheckedField(">", "q"),
    LONG64_UNSIGNED: _CheckedField(">", "Q"),
    ENUM: _CheckedField(">", "B"),
    FLOAT32: _CheckedField(">", "f"),
    FLOAT64: _CheckedField(">", "d"),
    DATE_TIME: _CheckedBytes(12),
    DATE: _CheckedBytes(5),
    TIME: _CheckedBytes(4),
    DONT_CARE: Pass,
}
# The members a uniform row may hold (`axdr_uniform_rows`), taken from the constructs
# above: tag -> (payload size, struct code); size -1: an A-XDR length then the bytes.
_ROW_MEMBERS = {}
for _tag, _con in SIMPLE_PAYLOADS.items():
    if isinstance(_con, _CheckedField):
        _ROW_MEMBERS[_tag] = (_con.length, _con.fmtstr[1:])
    elif isinstance(_con, _CheckedBytes):
        _ROW_MEMBERS[_tag] = (_con.length, "%ds" % _con.length)
    elif _con is AxdrOctets:
        _ROW_MEMBERS[_tag] = (-1, None)
del _tag, _con
_namespace["axdr_row_members"] = _ROW_MEMBERS
# Minimum encoded width inside compact-array contents (variable types: the length byte).
_MIN_WIDTH = {
    NULL_DATA: 0, DONT_CARE: 0, BOOLEAN: 1, BCD: 1, INTEGER: 1, UNSIGNED: 1, ENUM: 1,
    LONG: 2, LONG_UNSIGNED: 2, DOUBLE_LONG: 4, DOUBLE_LONG_UNSIGNED: 4, FLOAT32: 4,
    LONG64: 8, LONG64_UNSIGNED: 8, FLOAT64: 8, DATE_TIME: 12, DATE: 5, TIME: 4,
    BIT_STRING: 1, OCTET_STRING: 1, VISIBLE_STRING: 1, UTF8_STRING: 1,
}
_TOO_DEEP = "nesting deeper than %d" % MAX_DEPTH


# ---------------------------------------------------------------- TypeDescription

def _type_description_level(depth):
    """TypeDescription (Blue Book 4.1.6.1): a tag; for array also a uint16 element
    count and the element's description; for structure an A-XDR count and members."""
    cases = {tag: Pass for tag in SIMPLE_PAYLOADS}
    if depth < MAX_DEPTH:
        inner = _Level(lambda: _TYPE_DESCRIPTION_LEVELS[depth + 1])
        cases[ARRAY] = Struct("count" / _CheckedField(">", "H"), "element" / inner)
        cases[STRUCTURE] = SequenceOf(inner)
    else:
        cases[ARRAY] = cases[STRUCTURE] = _Reject(_TOO_DEEP)
    return TaggedChoice(cases, "type %d cannot describe compact-array contents")


def _description_model(parsed):
    """TypeDescription parse result -> model: a tag, (ARRAY, n, element) or
    (STRUCTURE, [members])."""
    tag, spec = parsed
    if tag == ARRAY:
        return (ARRAY, spec["count"], _description_model(spec["element"]))
    if tag == STRUCTURE:
        return (STRUCTURE, [_description_model(m) for m in spec])
    return tag


def _description_object(desc):
    """model -> what the TypeDescription construct builds from."""
    if type(desc) is int:
        return (desc, None)
    if isinstance(desc, (tuple, list)):
        if len(desc) == 3 and desc[0] == ARRAY:
            return (ARRAY, {"count": desc[1], "element": _description_object(desc[2])})
        if len(desc) == 2 and desc[0] == STRUCTURE and isinstance(desc[1], (list, tuple)):
            return (STRUCTURE, [_description_object(m) for m in desc[1]])
    raise ValidationError("bad type description %r" % (desc,))


def _description_key(desc):
    if type(desc) is int:
        return desc
    if desc[0] == ARRAY:
        return (ARRAY, desc[1], _description_key(desc[2]))
    return (STRUCTURE, tuple(_description_key(m) for m in desc[1]))


def _key_width(key):
    """Minimum width of one element. An array of zero-size elements is rejected: its
    count would cost work for no bytes (the firmware rejects it too)."""
    if type(key) is int:
        return _MIN_WIDTH[key]
    if key[0] == ARRAY:
        width = _key_width(key[2])
        if width == 0 and key[1]:
            raise ValidationError("array of zero-size elements in a type description")
        return key[1] * width
    return sum(_key_width(m) for m in key[1])


# ---------------------------------------------------------------- compact-array contents

class _Described(Construct):
    """One untagged value laid out by a description key, as a tagged model value."""

    def __init__(self, key):
        super().__init__()
        self.key = key
        if type(key) is int:
            self.subcon = SIMPLE_PAYLOADS[key]
        elif key[0] == ARRAY:
            self.subcon = _Described(key[2])
        else:
            self.members = [_Described(m) for m in key[1]]

    def _parse(self, stream, context, path):
        key = self.key
        if type(key) is int:
            return (key, self.subcon._parsereport(stream, context, path))
        if key[0] == ARRAY:
            return (ARRAY, [self.subcon._parsereport(stream, context, path)
                            for _ in range(key[1])])
        return (STRUCTURE, [m._parsereport(stream, context, path) for m in self.members])

    def _build(self, obj, stream, context, path):
        key = self.key
        if type(key) is int:
            return self.subcon._build(_check_tag(obj, key, None), stream, context, path)
        if key[0] == ARRAY:
            for item in _check_tag(obj, ARRAY, key[1]):
                self.subcon._build(item, stream, context, path)
            return obj
        items = _check_tag(obj, STRUCTURE, len(self.members))
        for i in range(len(self.members)):
            self.members[i]._build(items[i], stream, context, path)
        return obj

    def _emitparse(self, code):
        key = self.key
        if type(key) is int:
            return "(%d, %s)" % (key, self.subcon._compileparse(code))
        if key[0] == ARRAY:
            return "(1, [%s for _ in range(%d)])" % (self.subcon._compileparse(code), key[1])
        return "(2, [%s])" % "".join(m._compileparse(code) + ", " for m in self.members)

    def _emitbuild(self, code):
        _need(code, "check_tag")
        key = self.key
        if type(key) is int:
            return "reuse(axdr_check_tag(obj, %d, None), lambda obj: (%s))" % (
                key, self.subcon._compilebuild(code))
        if key[0] == ARRAY:
            return "[reuse(x, lambda obj: (%s)) for x in axdr_check_tag(obj, 1, %d)]" % (
                self.subcon._compilebuild(code), key[1])
        fname = "axdr_members_%d" % code.allocateId()
        code.append("%s = (%s)" % (fname, "".join(
            "lambda obj, io, this: (%s), " % m._compilebuild(code) for m in self.members)))
        return "[f(x, io, this) for f, x in zip(%s, axdr_check_tag(obj, 2, %d))]" % (
            fname, len(self.members))


_ELEMENT_CACHE = {}


def _element(key):
    element = _ELEMENT_CACHE.get(key)
    if element is None:
        if len(_ELEMENT_CACHE) >= 256:
            _ELEMENT_CACHE.clear()
        element = _Described(key).compile()
        _ELEMENT_CACHE[key] = element
    return element


class CompactArrayBody(Construct):
    """compact-array ::= contents-description TypeDescription, array-contents OCTET
    STRING (Blue Book 4.1.6.1). Parses to ``(description, [values])``; the count of
    values is whatever fills the contents."""

    def __init__(self, description_depth):
        super().__init__()
        self.description_depth = description_depth

    def _parse(self, stream, context, path):
        description = _compiled_description(self.description_depth)
        desc = _description_model(description._parsereport(stream, context, path))
        key = _description_key(desc)
        width = _key_width(key)
        data = _read_exact(stream, _parse_length(stream))
        if width == 0:
            if data:
                raise ValidationError("compact-array elements of zero size cannot be counted")
            return (desc, [])
        element = _element(key)
        sub = io.BytesIO(data)
        items = []
        while sub.tell() < len(data):
            items.append(element._parsereport(sub, context, path))
        return (desc, items)

    def _build(self, obj, stream, context, path):
        if not isinstance(obj, (tuple, list)) or len(obj) != 2:
            raise ValidationError("compact-array must be (description, items)", path=path)
        desc, items = obj
        description = _compiled_description(self.description_depth)
        description._build(_description_object(desc), stream, context, path)
        key = _description_key(desc)
        if not isinstance(items, (list, tuple)):
            raise ValidationError("compact-array items must be a list", path=path)
        if _key_width(key) == 0 and items:
            raise ValidationError("compact-array elements of zero size cannot be counted")
        element = _element(key)
        sub = io.BytesIO()
        for item in items:
            element._build(item, sub, context, path)
        data = sub.getvalue()
        head = _length_bytes(len(data))
        stream_write(stream, head + data, len(head) + len(data), path)
        return obj


# ---------------------------------------------------------------- Data

def _data_level(depth):
    cases = dict(SIMPLE_PAYLOADS)
    if depth < MAX_DEPTH:
        inner = _Level(lambda: _DATA_LEVELS[depth + 1])
        # rows read in one pass must be structures the next level can still hold
        cases[ARRAY] = SequenceOf(inner, uniform_rows=depth + 1 < MAX_DEPTH)
        cases[STRUCTURE] = SequenceOf(inner)
        cases[COMPACT_ARRAY] = CompactArrayBody(depth + 1)
    else:
        cases[ARRAY] = cases[STRUCTURE] = cases[COMPACT_ARRAY] = _Reject(_TOO_DEEP)
    return TaggedChoice(cases, "unknown data type tag %d")


_TYPE_DESCRIPTION_LEVELS = [_type_description_level(d) for d in range(MAX_DEPTH + 1)]
_DATA_LEVELS = [_data_level(d) for d in range(MAX_DEPTH + 1)]
_COMPILED_DESCRIPTIONS = {}


def _compiled_description(depth):
    compiled = _COMPILED_DESCRIPTIONS.get(depth)
    if compiled is None:
        compiled = _COMPILED_DESCRIPTIONS[depth] = _TYPE_DESCRIPTION_LEVELS[depth].compile()
    return compiled


#: A-XDR Data (all levels compiled into one module): parses to the tuple model,
#: builds from it
Data = _DATA_LEVELS[0].compile()
#: TypeDescription of compact-array contents (compiled), as parsed tagged pairs
TypeDescription = _compiled_description(0)


# ---------------------------------------------------------------- model conversion

def to_model(container):
    """Parse result -> the firmware tuple model. `Data` already parses into the model,
    so a ``(tag, value)`` result is returned as it is; a hand-built
    ``{"tag":, "value":}`` container form is converted, recursively."""
    if not isinstance(container, dict):
        return container
    tag, value = container["tag"], container["value"]
    if tag == ARRAY or tag == STRUCTURE:
        return (tag, [to_model(item) for item in value])
    if tag == COMPACT_ARRAY:
        desc, items = value
        return (tag, (_canonical_description(desc), [to_model(item) for item in items]))
    if tag == BIT_STRING:
        return (tag, (value[0], bytes(value[1])))
    return (tag, value)


def _canonical_description(desc):
    if isinstance(desc, dict):
        desc = _description_model((desc["tag"], desc.get("spec")))
    if type(desc) is int:
        return desc
    if desc[0] == ARRAY:
        return (ARRAY, desc[1], _canonical_description(desc[2]))
    return (STRUCTURE, [_canonical_description(m) for m in desc[1]])


_INT_TAGS = frozenset((DOUBLE_LONG, DOUBLE_LONG_UNSIGNED, BCD, INTEGER, LONG, UNSIGNED,
                       LONG_UNSIGNED, LONG64, LONG64_UNSIGNED, ENUM))
_BYTES_TAGS = frozenset((OCTET_STRING, VISIBLE_STRING, UTF8_STRING, DATE_TIME, DATE, TIME))
_BYTES_TYPES = (bytes, bytearray, memoryview)


class ModelError(ValueError):
    """A model value `from_model` refuses (wrong Python type, bad shape)."""


_ModelError = ModelError


def from_model(value, _depth=0):
    """Firmware tuple model -> the object `Data` builds. Checks the Python types the
    construct would coerce (a bool is not an int, a str is not bytes) and expands RAW
    (pre-encoded A-XDR) by parsing it; ranges and lengths are the construct's job."""
    if _depth > MAX_DEPTH + 1:
        raise _ModelError(_TOO_DEEP)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _ModelError("not a (tag, payload) pair: %r" % (value,))
    tag, payload = value
    if type(tag) is not int:
        raise _ModelError("data type tag must be an int: %r" % (tag,))
    if tag == ARRAY or tag == STRUCTURE:
        if not isinstance(payload, (list, tuple)):
            raise _ModelError("array/structure payload must be a list")
        return (tag, [_model_item(item, _depth + 1) for item in payload])
    if tag == COMPACT_ARRAY:
        if not isinstance(payload, (tuple, list)) or len(payload) != 2:
            raise _ModelError("compact-array payload must be (description, items)")
        desc, items = payload
        if not isinstance(items, (list, tuple)):
            raise _ModelError("compact-array items must be a list")
        return (tag, (desc, [_checked_described(item, _depth + 1) for item in items]))
    if tag == RAW:
        return _raw_object(payload)
    return (tag, _checked_simple(tag, payload))


def _model_item(item, depth):
    """`from_model` of an array or structure member; an integer or a byte string that
    already has its model type is taken as it is (what `from_model` would return)."""
    if type(item) is tuple and len(item) == 2 and type(item[0]) is int:
        tag, payload = item
        if type(payload) is int:
            if tag in _INT_TAGS:
                return item
        elif type(payload) is bytes and tag in _BYTES_TAGS:
            return item
    return from_model(item, depth)


def _checked_simple(tag, payload):
    if tag in _INT_TAGS:
        if type(payload) is not int:
            raise _ModelError("integer payload must be int: %r" % (payload,))
    elif tag in _BYTES_TAGS:
        if not isinstance(payload, _BYTES_TYPES):
            raise _ModelError("payload must be bytes: %r" % (payload,))
        return bytes(payload)
    elif tag == BOOLEAN:
        if payload is not True and payload is not False:
            raise _ModelError("boolean payload must be True or False: %r" % (payload,))
    elif tag == FLOAT32 or tag == FLOAT64:
        if type(payload) is not float and type(payload) is not int:
            raise _ModelError("float payload must be float: %r" % (payload,))
        return float(payload)
    elif tag == BIT_STRING:
        if (not isinstance(payload, (tuple, list)) or len(payload) != 2
                or not isinstance(payload[1], _BYTES_TYPES)):
            raise _ModelError("bit-string payload must be (bit_count, bytes)")
        return (payload[0], bytes(payload[1]))
    elif tag == NULL_DATA or tag == DONT_CARE:
        if payload is not None:
            raise _ModelError("null-data/dont-care payload must be None")
    elif tag not in SIMPLE_PAYLOADS:
        raise _ModelError("unknown data type tag %r" % (tag,))
    return payload


def _checked_described(value, depth):
    """Compact-array elements: the same type checks; structure checked by the build."""
    if depth > MAX_DEPTH + 1:
        raise _ModelError(_TOO_DEEP)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _ModelError("not a (tag, payload) pair: %r" % (value,))
    tag, payload = value
    if tag == ARRAY or tag == STRUCTURE:
        if not isinstance(payload, (list, tuple)):
            raise _ModelError("array/structure payload must be a list")
        return (tag, [_checked_described(item, depth + 1) for item in payload])
    if type(tag) is not int or tag == COMPACT_ARRAY or tag == RAW:
        raise _ModelError("type %r cannot be a compact-array element" % (tag,))
    return (tag, _checked_simple(tag, payload))


def _raw_object(payload):
    if not isinstance(payload, _BYTES_TYPES) or not len(payload):
        raise _ModelError("raw payload must be non-empty encoded bytes")
    try:
        return decode(payload)
    except AxdrCodecError as e:
        raise _ModelError("raw payload is not one A-XDR value: %s" % e)


# ---------------------------------------------------------------- helpers

def decode_prefix(buf, offset=0):
    """-> (model, next_offset): one Data value starting at `offset`."""
    stream = io.BytesIO(bytes(buf))
    stream.seek(offset)
    try:
        value = Data.parse_stream(stream)
    except (ConstructError, struct.error) as e:
        raise AxdrCodecError(stream.tell(), _reason(e))
    return value, stream.tell()


def decode(buf):
    """One Data value filling `buf` exactly -> the firmware tuple model."""
    value, end = decode_prefix(buf)
    if end != len(buf):
        raise AxdrCodecError(end, "%d trailing bytes after the value" % (len(buf) - end))
    return value


def encode(value):
    """Firmware tuple model -> A-XDR bytes."""
    stream = io.BytesIO()
    try:
        Data.build_stream(from_model(value), stream)
    except _ModelError as e:
        raise AxdrCodecError(None, str(e))
    except (ConstructError, struct.error, OverflowError, TypeError, ValueError,
            KeyError, IndexError) as e:
        raise AxdrCodecError(stream.tell(), _reason(e))
    return stream.getvalue()


def _reason(error):
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__
