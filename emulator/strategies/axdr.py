"""Hypothesis strategies for A-XDR `Data` in the tuple model of
docs/CORE_INTERFACES.md section 1, and for malformed encodings of it.

Valid values: every simple type (`values_of_type(tag)`), arrays, structures and
compact-arrays nested up to `MAX_DEPTH` (`data_values()`), compact-array type
descriptions with conforming contents (`compact_arrays()`).
Invalid input: model values that must not encode (`invalid_values()`), and byte
strings derived from valid encodings by mutation (`mutated_encodings()`).
"""

from hypothesis import strategies as st

from emulator.codec import axdr as codec

MAX_DEPTH = codec.MAX_DEPTH

NULL_DATA, ARRAY, STRUCTURE, BOOLEAN, BIT_STRING = 0, 1, 2, 3, 4
DOUBLE_LONG, DOUBLE_LONG_UNSIGNED = 5, 6
OCTET_STRING, VISIBLE_STRING, UTF8_STRING, BCD = 9, 10, 12, 13
INTEGER, LONG, UNSIGNED, LONG_UNSIGNED, COMPACT_ARRAY = 15, 16, 17, 18, 19
LONG64, LONG64_UNSIGNED, ENUM, FLOAT32, FLOAT64 = 20, 21, 22, 23, 24
DATE_TIME, DATE, TIME, DONT_CARE = 25, 26, 27, 255

INTEGER_RANGES = {
    DOUBLE_LONG: (-2 ** 31, 2 ** 31 - 1),
    DOUBLE_LONG_UNSIGNED: (0, 2 ** 32 - 1),
    BCD: (0, 255),
    INTEGER: (-128, 127),
    LONG: (-2 ** 15, 2 ** 15 - 1),
    UNSIGNED: (0, 255),
    LONG_UNSIGNED: (0, 2 ** 16 - 1),
    LONG64: (-2 ** 63, 2 ** 63 - 1),
    LONG64_UNSIGNED: (0, 2 ** 64 - 1),
    ENUM: (0, 255),
}
OCTET_SIZES = {DATE_TIME: 12, DATE: 5, TIME: 4}
#: every simple (non-container) tag of the Data CHOICE
SIMPLE_TAGS = tuple(sorted(
    list(INTEGER_RANGES) + list(OCTET_SIZES)
    + [NULL_DATA, BOOLEAN, BIT_STRING, OCTET_STRING, VISIBLE_STRING, UTF8_STRING,
       FLOAT32, FLOAT64, DONT_CARE]))
CONTAINER_TAGS = (ARRAY, STRUCTURE, COMPACT_ARRAY)
ALL_TAGS = tuple(sorted(SIMPLE_TAGS + CONTAINER_TAGS))
_ZERO_WIDTH = (NULL_DATA, DONT_CARE)


def _masked_bit_string(count_and_bytes):
    count, data = count_and_bytes
    unused = (8 - (count & 7)) & 7
    if unused:
        data = data[:-1] + bytes((data[-1] & (0xFF << unused) & 0xFF,))
    return (count, data)


def bit_strings(max_bits=80):
    """(bit_count, bytes) with the unused trailing bits 0."""
    return st.integers(0, max_bits).flatmap(
        lambda n: st.tuples(st.just(n), st.binary(min_size=(n + 7) // 8,
                                                  max_size=(n + 7) // 8))
    ).map(_masked_bit_string)


def cosem_datetimes():
    """12-byte COSEM date-times: plausible dates, wildcards and arbitrary bytes."""
    plausible = st.builds(
        lambda y, mo, d, wd, h, mi, s, hs, dev, status: bytes((
            y >> 8, y & 0xFF, mo, d, wd, h, mi, s, hs, (dev >> 8) & 0xFF, dev & 0xFF,
            status)),
        st.one_of(st.integers(1970, 2099), st.just(0xFFFF)),
        st.one_of(st.integers(1, 12), st.sampled_from([0xFD, 0xFE, 0xFF])),
        st.one_of(st.integers(1, 28), st.sampled_from([0xFD, 0xFE, 0xFF])),
        st.one_of(st.integers(1, 7), st.just(0xFF)),
        st.one_of(st.integers(0, 23), st.just(0xFF)),
        st.one_of(st.integers(0, 59), st.just(0xFF)),
        st.one_of(st.integers(0, 59), st.just(0xFF)),
        st.one_of(st.integers(0, 99), st.just(0xFF)),
        st.one_of(st.integers(-720, 720), st.just(-0x8000)),
        st.integers(0, 255),
    )
    return st.one_of(plausible, st.binary(min_size=12, max_size=12))


def payloads_of_type(tag):
    """Valid payloads of one simple type."""
    if tag in INTEGER_RANGES:
        lo, hi = INTEGER_RANGES[tag]
        return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0 if lo <= 0 else lo]))
    if tag == DATE_TIME:
        return cosem_datetimes()
    if tag in OCTET_SIZES:
        return st.binary(min_size=OCTET_SIZES[tag], max_size=OCTET_SIZES[tag])
    if tag == NULL_DATA or tag == DONT_CARE:
        return st.none()
    if tag == BOOLEAN:
        return st.booleans()
    if tag == BIT_STRING:
        return bit_strings()
    if tag == OCTET_STRING:
        # lengths around the one-byte/two-byte A-XDR length boundary included
        return st.one_of(st.binary(max_size=40), st.binary(min_size=126, max_size=300))
    if tag == VISIBLE_STRING:
        return st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                       max_size=40).map(lambda s: s.encode("ascii"))
    if tag == UTF8_STRING:
        return st.text(max_size=30).map(lambda s: s.encode("utf-8"))
    if tag == FLOAT32:
        return st.floats(width=32, allow_nan=False)
    if tag == FLOAT64:
        return st.floats(allow_nan=False)
    raise ValueError("not a simple type tag: %r" % (tag,))


def values_of_type(tag):
    """Valid values of any one type, containers included."""
    if tag in SIMPLE_TAGS:
        return payloads_of_type(tag).map(lambda p: (tag, p))
    if tag == COMPACT_ARRAY:
        return compact_arrays()
    children = simple_values()
    return st.lists(children, max_size=8).map(lambda items: (tag, items))


def simple_values():
    # one_of over strategies built once, not a flatmap: a flatmap builds (and hypothesis
    # validates) a new strategy on every draw, which cost ten times the draw
    return st.one_of([values_of_type(tag) for tag in SIMPLE_TAGS])


# ---------------------------------------------------------------- compact-array

def description_width(desc):
    """Minimum encoded width of one element laid out by `desc` (0: zero-size)."""
    if isinstance(desc, int):
        # variable-size types count their one length byte
        return 0 if desc in _ZERO_WIDTH else _FIXED_WIDTHS.get(desc, 1)
    if desc[0] == ARRAY:
        return desc[1] * description_width(desc[2])
    return sum(description_width(m) for m in desc[1])


_FIXED_WIDTHS = {
    BOOLEAN: 1, BCD: 1, INTEGER: 1, UNSIGNED: 1, ENUM: 1, LONG: 2, LONG_UNSIGNED: 2,
    DOUBLE_LONG: 4, DOUBLE_LONG_UNSIGNED: 4, FLOAT32: 4, LONG64: 8,
    LONG64_UNSIGNED: 8, FLOAT64: 8, DATE_TIME: 12, DATE: 5, TIME: 4,
}


def _valid_description(desc):
    """No array of zero-size elements with a non-zero count (both codecs reject it)."""
    if isinstance(desc, int):
        return True
    if desc[0] == ARRAY:
        return (_valid_description(desc[2])
                and not (desc[1] and description_width(desc[2]) == 0))
    return all(_valid_description(m) for m in desc[1])


def type_descriptions(max_depth=3):
    """Compact-array TypeDescriptions (Blue Book 4.1.6.1), nested up to max_depth."""
    leaf = st.sampled_from(SIMPLE_TAGS)
    if max_depth <= 0:
        return leaf
    inner = st.deferred(lambda: type_descriptions(max_depth - 1))
    return st.one_of(
        leaf,
        st.tuples(st.just(ARRAY), st.integers(0, 3), inner),
        st.lists(inner, max_size=4).map(lambda ms: (STRUCTURE, ms)),
    ).filter(_valid_description)


def values_for_description(desc):
    if isinstance(desc, int):
        return values_of_type(desc)
    if desc[0] == ARRAY:
        return st.lists(values_for_description(desc[2]), min_size=desc[1],
                        max_size=desc[1]).map(lambda items: (ARRAY, items))
    return st.tuples(*[values_for_description(m) for m in desc[1]]).map(
        lambda items: (STRUCTURE, list(items)))


def compact_arrays(descriptions=None, max_items=6):
    """(COMPACT_ARRAY, (description, items)); no items when elements are zero-size."""
    descriptions = descriptions if descriptions is not None else type_descriptions()

    def with_items(desc):
        size = 0 if description_width(desc) == 0 else max_items
        return st.lists(values_for_description(desc), max_size=size).map(
            lambda items: (COMPACT_ARRAY, (desc, items)))

    return descriptions.flatmap(with_items)


# ---------------------------------------------------------------- nested values

def value_depth(value):
    """Containers enclosing the deepest part of `value` (compact-array descriptions
    count like the firmware counts them)."""
    tag, payload = value
    if tag == ARRAY or tag == STRUCTURE:
        return 1 + max([value_depth(v) for v in payload] or [0])
    if tag == COMPACT_ARRAY:
        return 1 + _description_depth(payload[0])
    return 0


def _description_depth(desc):
    if isinstance(desc, int):
        return 0
    if desc[0] == ARRAY:
        return 1 + _description_depth(desc[2])
    return 1 + max([_description_depth(m) for m in desc[1]] or [0])


def data_values(max_leaves=25):
    """Any valid Data value: simple types, arrays, structures, compact-arrays."""
    leaves = st.one_of(simple_values(), compact_arrays(max_items=3))
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=5).map(lambda items: (ARRAY, items)),
            st.lists(children, max_size=5).map(lambda items: (STRUCTURE, items)),
        ),
        max_leaves=max_leaves,
    ).filter(lambda v: value_depth(v) <= MAX_DEPTH)


def nested(depth, tag=ARRAY):
    """`depth` containers around a null-data: depth 16 is valid, 17 is not."""
    value = (NULL_DATA, None)
    for _ in range(depth):
        value = (tag, [value])
    return value


def profile_buffers(max_entries=48):
    """Profile Generic buffers as a meter returns them: array of structure
    {date-time octet-string, double-long-unsigned, unsigned status}."""
    entry = st.tuples(cosem_datetimes(), st.integers(0, 2 ** 32 - 1), st.integers(0, 255)).map(
        lambda e: (STRUCTURE, [(OCTET_STRING, e[0]), (DOUBLE_LONG_UNSIGNED, e[1]),
                               (UNSIGNED, e[2])]))
    return st.lists(entry, max_size=max_entries).map(lambda rows: (ARRAY, rows))


# ---------------------------------------------------------------- invalid input

def invalid_values():
    """Model values no codec may encode: out-of-range integers, wrong Python types,
    bad bit-strings, wrong-size date/time, unknown tags, too deep nesting."""
    out_of_range = st.sampled_from(sorted(INTEGER_RANGES)).flatmap(
        lambda tag: st.one_of(
            st.integers(max_value=INTEGER_RANGES[tag][0] - 1),
            st.integers(min_value=INTEGER_RANGES[tag][1] + 1),
        ).map(lambda n: (tag, n)))
    wrong_type = st.one_of(
        st.sampled_from(sorted(INTEGER_RANGES)).flatmap(
            lambda tag: st.sampled_from([(tag, True), (tag, 1.0), (tag, "1"), (tag, None)])),
        st.sampled_from([(BOOLEAN, 1), (BOOLEAN, None), (OCTET_STRING, "text"),
                         (VISIBLE_STRING, 5), (FLOAT64, "1.0"), (FLOAT32, None),
                         (NULL_DATA, 0), (DONT_CARE, b""), (ARRAY, None),
                         (STRUCTURE, 3), (BIT_STRING, b"\x00")]),
    )
    bad_bits = st.integers(1, 40).flatmap(lambda n: st.one_of(
        st.just((BIT_STRING, (n, b"\x00" * ((n + 7) // 8 + 1)))),
        st.just((BIT_STRING, (n, b"\xff" * ((n + 7) // 8)))).filter(lambda v: n % 8),
        st.just((BIT_STRING, (-n, b""))),
    ))
    wrong_size = st.sampled_from(sorted(OCTET_SIZES)).flatmap(
        lambda tag: st.binary(max_size=20).filter(lambda b: len(b) != OCTET_SIZES[tag]).map(
            lambda b: (tag, b)))
    unknown_tag = st.sampled_from([7, 8, 11, 14, 28, 100, 254, 256, -2]).map(lambda t: (t, None))
    malformed = st.sampled_from([None, 5, (1,), (1, 2, 3), "x"])
    bad_compact = st.sampled_from([
        (COMPACT_ARRAY, (UNSIGNED, [(LONG, 1)])),
        (COMPACT_ARRAY, (UNSIGNED, [(UNSIGNED, 256)])),
        (COMPACT_ARRAY, ((ARRAY, 2, UNSIGNED), [(ARRAY, [(UNSIGNED, 1)])])),
        (COMPACT_ARRAY, ((STRUCTURE, [UNSIGNED, LONG]), [(STRUCTURE, [(UNSIGNED, 1)])])),
        (COMPACT_ARRAY, (NULL_DATA, [(NULL_DATA, None)])),
        (COMPACT_ARRAY, ((ARRAY, 3, NULL_DATA), [])),
        (COMPACT_ARRAY, (COMPACT_ARRAY, [])),
        (COMPACT_ARRAY, (7, [])),
        (COMPACT_ARRAY, ((ARRAY, 70000, UNSIGNED), [])),
    ])
    too_deep = st.sampled_from([ARRAY, STRUCTURE]).map(lambda tag: nested(MAX_DEPTH + 1, tag))
    inside = st.one_of(out_of_range, wrong_type, bad_bits, wrong_size, unknown_tag).flatmap(
        lambda bad: st.sampled_from([bad, (STRUCTURE, [(UNSIGNED, 1), bad]),
                                     (ARRAY, [(ARRAY, [bad])])]))
    return st.one_of(inside, malformed, bad_compact, too_deep)


_MUTATIONS = ("truncate", "flip", "insert", "delete", "append", "tag", "length")
_BAD_TAGS = (7, 8, 11, 14, 28, 29, 100, 200, 254)


def mutated_encodings(values=None):
    """(mutation, bytes): a valid encoding changed by one mutation. Truncations are
    never valid (A-XDR values are self-delimiting); the others may happen to be."""
    return _mutated_encodings(values if values is not None else data_values(max_leaves=12))


@st.composite
def _mutated_encodings(draw, values):
    # `values` is built once by the caller: a recursive strategy built per draw costs
    # hypothesis a validation each time, many times the draw itself
    value = draw(values)
    encoded = codec.encode(value)
    mutation = draw(st.sampled_from(_MUTATIONS))
    if mutation == "truncate":
        return mutation, encoded[:draw(st.integers(0, len(encoded) - 1))]
    if mutation == "append":
        return mutation, encoded + draw(st.binary(min_size=1, max_size=4))
    i = draw(st.integers(0, len(encoded) - 1))
    if mutation == "flip":
        bit = 1 << draw(st.integers(0, 7))
        return mutation, encoded[:i] + bytes((encoded[i] ^ bit,)) + encoded[i + 1:]
    if mutation == "insert":
        return mutation, encoded[:i] + draw(st.binary(min_size=1, max_size=3)) + encoded[i:]
    if mutation == "delete":
        return mutation, encoded[:i] + encoded[i + 1:]
    if mutation == "tag":
        return mutation, encoded[:i] + bytes((draw(st.sampled_from(_BAD_TAGS)),)) + encoded[i + 1:]
    # an over-long or impossible A-XDR length prefix
    prefix = draw(st.sampled_from([b"\x80", b"\x85", b"\xff", b"\x84\xff\xff\xff\xff",
                                   b"\x82\xff\xff", b"\x7f"]))
    return mutation, encoded[:i] + prefix + encoded[i + 1:]
