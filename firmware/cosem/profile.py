"""Profile generic, class_id 7, version 1 (Blue Book 4.3.6).

Storage. Each entry is kept A-XDR encoded (the bytes of its structure) in a bounded
ring: one bytearray of fixed-size slots (2-byte length + entry) plus a parallel
bytearray of capture times (uint32 seconds since 1970 UTC, so 2106 is the limit).
A read of the buffer is a concatenation (the `RAW` pseudo-tag), a capture is one
encode and one slice copy, and a year of half-hourly entries (17,520) costs about
20 bytes each rather than a Python object per value. The slot grows (one copy of
the ring) if an entry longer than every earlier one arrives.

Sort methods (attribute 5): 1 fifo and 2 lifo are supported. Entries are stored in
capture order either way; lifo presents them newest first, and both drop the oldest
entry when the buffer is full. 3 largest, 4 smallest, 5 nearest_to_zero and
6 farthest_from_zero are refused at SET with other-reason.

Selective access on the buffer (Blue Book 4.3.6, attribute 2):
- selector 1, range_descriptor {restricting_object, from_value, to_value,
  selected_values}: entries whose restricting value v has from <= v <= to. When the
  restricting object is a Clock time column (class 8, attribute 2) the capture-time
  array answers (binary search while times never went back). Other columns are
  decoded and compared as integers, or as date-times (seconds) when from/to are
  date-times. A from/to date-time the device cannot resolve (wildcards) is an open
  bound. An empty selected_values array means every column.
- selector 2, entry_descriptor {from_entry, to_entry, from_selected_value,
  to_selected_value}: entries and columns numbered from 1 in presentation order;
  0 for to_entry / to_selected_value means the last; from_entry 0 is read as 1.
  A from_entry past the last entry, or to_entry below from_entry, gives an empty
  array; an impossible column range is scope-of-access-violated.
"""

import struct

from firmware.cosem.base import (CosemObject, DataAccessError, expect,
                                 expect_int, expect_structure, expect_logical_name,
                                 hex_bytes, bytes_hex, action_error)
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms import cosem_datetime

FIFO = 1
LIFO = 2
SUPPORTED_SORT_METHODS = (FIFO, LIFO)

CLOCK_CLASS = 8
MAX_TIME = 0xFFFFFFFF
NO_SORT_OBJECT = (0, b"\x00" * 6, 0, 0)


class CaptureObject:
    """One column: attribute `attribute_index` of `obj`, element `data_index` (0 = all)."""

    def __init__(self, obj, attribute_index, data_index=0):
        self.obj = obj
        self.class_id = obj.class_id
        self.logical_name = obj.logical_name
        self.attribute_index = attribute_index
        self.data_index = data_index

    def key(self):
        return (self.class_id, self.logical_name, self.attribute_index, self.data_index)

    def definition(self):
        return capture_definition(self.key())

    def is_clock_time(self):
        return (self.class_id == CLOCK_CLASS and self.attribute_index == 2
                and self.data_index == 0)

    def read(self, ctx):
        value = self.obj.get(self.attribute_index, ctx)
        if self.data_index:
            # data_index selects one element of an array/structure value (Blue Book 4.3.6)
            tag, items = value
            if tag != axdr.ARRAY and tag != axdr.STRUCTURE or self.data_index > len(items):
                return (axdr.NULL_DATA, None)
            return items[self.data_index - 1]
        return value


def capture_definition(key):
    """capture_object_definition ::= structure {class_id long-unsigned, logical_name
    octet-string, attribute_index integer, data_index long-unsigned} (Blue Book 4.3.6)."""
    return (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, key[0]), (axdr.OCTET_STRING, key[1]),
                             (axdr.INTEGER, key[2]), (axdr.LONG_UNSIGNED, key[3])])


def parse_capture_definition(value):
    items = expect_structure(value, 4)
    return (expect_int(items[0], axdr.LONG_UNSIGNED, 0, 0xFFFF),
            expect_logical_name(items[1]),
            expect_int(items[2], axdr.INTEGER, -128, 127),
            expect_int(items[3], axdr.LONG_UNSIGNED, 0, 0xFFFF))


class EntryRing:
    """Bounded ring of encoded entries with their capture times; index 0 is the oldest."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.slot = 0
        self.data = bytearray(0)
        self.times = bytearray(4 * capacity)
        self.head = 0
        self.count = 0
        self.monotonic = True       # capture times never went back: bisect is valid

    def append(self, seconds, entry):
        n = len(entry)
        if n + 2 > self.slot:
            self._grow(n + 2)
        cap = self.capacity
        if self.count < cap:
            i = self.head + self.count
            if i >= cap:
                i -= cap
            self.count += 1
        else:
            i = self.head
            self.head = i + 1 if i + 1 < cap else 0
        if self.count > 1 and seconds < self.time(self.count - 2):
            self.monotonic = False
        off = i * self.slot
        data = self.data
        data[off] = n >> 8
        data[off + 1] = n & 0xFF
        data[off + 2:off + 2 + n] = entry
        struct.pack_into(">I", self.times, 4 * i, seconds)

    def physical(self, k):
        i = self.head + k
        return i - self.capacity if i >= self.capacity else i

    def entry(self, k):
        off = self.physical(k) * self.slot
        data = self.data
        n = (data[off] << 8) | data[off + 1]
        return data[off + 2:off + 2 + n]

    def time(self, k):
        return struct.unpack_from(">I", self.times, 4 * self.physical(k))[0]

    def clear(self):
        self.head = 0
        self.count = 0
        self.monotonic = True

    def first_at_or_after(self, seconds):
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.time(mid) < seconds:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _grow(self, slot):
        old_slot, old_data = self.slot, self.data
        data = bytearray(slot * self.capacity)
        if old_slot:
            for i in range(self.capacity):
                src = i * old_slot
                n = ((old_data[src] << 8) | old_data[src + 1]) + 2
                data[i * slot:i * slot + n] = old_data[src:src + n]
        self.slot = slot
        self.data = data


def encode_entry(values):
    out = bytearray(b"\x02")
    out += axdr.encode_length(len(values))
    for v in values:
        axdr.encode_into(out, v)
    return bytes(out)


class ProfileGeneric(CosemObject):
    class_id = 7
    version = 1
    attribute_count = 8
    method_count = 2

    def __init__(self, logical_name, capture_objects, capture_period=0, profile_entries=1,
                 sort_method=FIFO, max_entries=None, resolve=None):
        CosemObject.__init__(self, logical_name)
        if sort_method not in SUPPORTED_SORT_METHODS:
            raise ValueError("sort method not supported")
        self.columns = [_column(c) for c in capture_objects]
        self.capture_period = capture_period
        self.sort_method = sort_method
        self.sort_object = NO_SORT_OBJECT
        self.max_entries = max_entries if max_entries is not None else profile_entries
        if profile_entries < 1 or profile_entries > self.max_entries:
            raise ValueError("profile_entries out of range")
        self.resolve = resolve      # (class_id, logical_name) -> object, for SET of attr 3
        self.ring = EntryRing(profile_entries)

    # -- the application's side -------------------------------------------------

    @property
    def entries_in_use(self):
        return self.ring.count

    @property
    def profile_entries(self):
        return self.ring.capacity

    def capture(self, ctx):
        """Method 2: read every capture object now and append the entry."""
        values = [c.read(ctx) for c in self.columns]
        self.ring.append(ctx.now, encode_entry(values))

    def store_entry(self, seconds, values):
        """Append a computed entry (e.g. GB HH interval consumption) with its time."""
        if len(values) != len(self.columns):
            raise ValueError("one value per capture object")
        if seconds < 0 or seconds > MAX_TIME:
            raise ValueError("capture time out of range")
        self.ring.append(seconds, encode_entry(values))

    def reset(self):
        self.ring.clear()

    def entries(self):
        """Encoded entries in presentation order (a generator; nothing is copied)."""
        n = self.ring.count
        for j in range(n):
            yield self.ring.entry(self._logical(j))

    # -- COSEM services -----------------------------------------------------------

    def selectors(self, attribute):
        return (1, 2) if attribute == 2 else ()

    def get_attribute(self, attribute, ctx, selector, parameters):
        if attribute == 2:
            return self._buffer(selector, parameters)
        if attribute == 3:
            return (axdr.ARRAY, [c.definition() for c in self.columns])
        if attribute == 4:
            return (axdr.DOUBLE_LONG_UNSIGNED, self.capture_period)
        if attribute == 5:
            return (axdr.ENUM, self.sort_method)
        if attribute == 6:
            return capture_definition(self.sort_object)
        if attribute == 7:
            return (axdr.DOUBLE_LONG_UNSIGNED, self.ring.count)
        return (axdr.DOUBLE_LONG_UNSIGNED, self.ring.capacity)

    def set_attribute(self, attribute, value, ctx):
        if attribute == 2 or attribute == 7:
            raise DataAccessError(R.READ_WRITE_DENIED, "buffer is written by captures")
        if attribute == 3:
            self._set_capture_objects(value)
        elif attribute == 4:
            self.capture_period = expect_int(value, axdr.DOUBLE_LONG_UNSIGNED, 0, MAX_TIME)
        elif attribute == 5:
            method = expect_int(value, axdr.ENUM, 1, 6)
            if method not in SUPPORTED_SORT_METHODS:
                raise DataAccessError(R.OTHER_REASON, "sort method not supported")
            self.sort_method = method
        elif attribute == 6:
            key = parse_capture_definition(value)
            if key != NO_SORT_OBJECT and self._column_index(key) < 0:
                raise DataAccessError(R.OTHER_REASON, "sort object is not a column")
            self.sort_object = key
        else:
            entries = expect_int(value, axdr.DOUBLE_LONG_UNSIGNED, 1, self.max_entries)
            # Blue Book 4.3.6: changing profile_entries empties the buffer
            self.ring = EntryRing(entries)

    def run_method(self, method, parameters, ctx):
        if method == 1:
            self.reset()
        else:
            try:
                self.capture(ctx)
            except DataAccessError as e:
                raise action_error(e)
        return None

    # -- buffer reads -------------------------------------------------------------

    def _logical(self, j):
        """Storage index of the j-th entry in presentation order."""
        return j if self.sort_method == FIFO else self.ring.count - 1 - j

    def _buffer(self, selector, parameters):
        if selector == 0:
            return self._encode_rows(range(self.ring.count), None)
        if selector == 1:
            return self._by_range(parameters)
        return self._by_entry(parameters)

    def _encode_rows(self, rows, columns):
        """rows: presentation positions; columns: 0-based column indices or None (all)."""
        out = bytearray(b"\x01")
        out += axdr.encode_length(len(rows))
        ring = self.ring
        for j in rows:
            entry = ring.entry(self._logical(j))
            if columns is None:
                out += entry
            else:
                _select_columns(out, entry, columns)
        return (axdr.RAW, bytes(out))

    def _by_entry(self, parameters):
        items = _access_structure(parameters, 4)
        from_entry = _access_int(items[0], axdr.DOUBLE_LONG_UNSIGNED)
        to_entry = _access_int(items[1], axdr.DOUBLE_LONG_UNSIGNED)
        from_col = _access_int(items[2], axdr.LONG_UNSIGNED)
        to_col = _access_int(items[3], axdr.LONG_UNSIGNED)
        count = self.ring.count
        ncols = len(self.columns)
        from_entry = max(from_entry, 1)
        if to_entry == 0 or to_entry > count:
            to_entry = count
        from_col = max(from_col, 1)
        if to_col == 0 or to_col > ncols:
            to_col = ncols
        if from_col > to_col:
            raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "empty column range")
        columns = None
        if from_col != 1 or to_col != ncols:
            columns = list(range(from_col - 1, to_col))
        return self._encode_rows(range(from_entry - 1, to_entry), columns)

    def _by_range(self, parameters):
        items = _access_structure(parameters, 4)
        try:
            key = parse_capture_definition(items[0])
        except DataAccessError:
            raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "bad restricting object")
        col = self._column_index(key)
        if col < 0:
            raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "restricting object is not a column")
        columns = self._selected_columns(items[3])
        if self.columns[col].is_clock_time():
            low = _bound_seconds(items[1], 0)
            high = _bound_seconds(items[2], MAX_TIME)
            rows = self._rows_in_time(low, high)
        else:
            rows = self._rows_by_value(col, items[1], items[2])
        return self._encode_rows(rows, columns)

    def _rows_in_time(self, low, high):
        ring = self.ring
        n = ring.count
        if ring.monotonic:
            first = ring.first_at_or_after(low)
            last = ring.first_at_or_after(high + 1)
            stored = range(first, last)
        else:
            stored = [k for k in range(n) if low <= ring.time(k) <= high]
        if self.sort_method == FIFO:
            return stored
        rows = [n - 1 - k for k in stored]
        rows.reverse()
        return rows

    def _rows_by_value(self, col, from_value, to_value):
        low = _comparable(from_value)
        high = _comparable(to_value)
        if low is None or high is None:
            raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "range bounds not comparable")
        rows = []
        for j in range(self.ring.count):
            entry = self.ring.entry(self._logical(j))
            v = _comparable(_column_value(entry, col))
            if v is not None and low <= v <= high:
                rows.append(j)
        return rows

    def _selected_columns(self, value):
        if value[0] != axdr.ARRAY:
            raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "selected_values not an array")
        if not value[1]:
            return None
        columns = []
        for d in value[1]:
            try:
                i = self._column_index(parse_capture_definition(d))
            except DataAccessError:
                i = -1
            if i < 0:
                raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "selected value is not a column")
            columns.append(i)
        return columns

    def _column_index(self, key):
        for i in range(len(self.columns)):
            if self.columns[i].key() == key:
                return i
        return -1

    def _set_capture_objects(self, value):
        if self.resolve is None:
            raise DataAccessError(R.READ_WRITE_DENIED, "capture objects are fixed")
        defs = expect(value, axdr.ARRAY)
        columns = []
        for d in defs:
            key = parse_capture_definition(d)
            obj = self.resolve(key[0], key[1])
            if obj is None or key[2] < 1 or key[2] > obj.attribute_count:
                raise DataAccessError(R.OTHER_REASON, "capture object does not exist")
            columns.append(CaptureObject(obj, key[2], key[3]))
        self.columns = columns
        self.sort_object = NO_SORT_OBJECT
        # Blue Book 4.3.6: a change of capture_objects empties the buffer
        self.ring = EntryRing(self.ring.capacity)

    # -- persistence ------------------------------------------------------------------

    def state(self):
        ring = self.ring
        return {
            "capture_objects": [[k[0], hex_bytes(k[1]), k[2], k[3]]
                                for k in [c.key() for c in self.columns]],
            "capture_period": self.capture_period,
            "sort_method": self.sort_method,
            "sort_object": [self.sort_object[0], hex_bytes(self.sort_object[1]),
                            self.sort_object[2], self.sort_object[3]],
            "profile_entries": ring.capacity,
            "times": [ring.time(k) for k in range(ring.count)],
            "entries": [hex_bytes(ring.entry(k)) for k in range(ring.count)],
        }

    def restore(self, state):
        keys = [(d[0], bytes_hex(d[1]), d[2], d[3]) for d in state["capture_objects"]]
        if keys != [c.key() for c in self.columns]:
            if self.resolve is None:
                raise ValueError("saved capture objects differ and cannot be resolved")
            columns = []
            for k in keys:
                obj = self.resolve(k[0], k[1])
                if obj is None:
                    raise ValueError("saved capture object no longer exists")
                columns.append(CaptureObject(obj, k[2], k[3]))
            self.columns = columns
        self.capture_period = state["capture_period"]
        self.sort_method = state["sort_method"]
        so = state["sort_object"]
        self.sort_object = (so[0], bytes_hex(so[1]), so[2], so[3])
        ring = EntryRing(state["profile_entries"])
        times = state["times"]
        entries = state["entries"]
        for k in range(len(entries)):
            ring.append(times[k], bytes_hex(entries[k]))
        self.ring = ring


def _column(c):
    if isinstance(c, CaptureObject):
        return c
    if len(c) == 2:
        return CaptureObject(c[0], c[1])
    return CaptureObject(c[0], c[1], c[2])


def _access_structure(parameters, count):
    if not isinstance(parameters, tuple) or len(parameters) != 2:
        raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "missing access parameters")
    if parameters[0] != axdr.STRUCTURE or len(parameters[1]) != count:
        raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "malformed access parameters")
    return parameters[1]


def _access_int(value, tag):
    if value[0] != tag:
        raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "malformed access parameters")
    return value[1]


def _date_time_payload(value):
    tag, payload = value
    if (tag == axdr.OCTET_STRING or tag == axdr.DATE_TIME) and len(payload) == 12:
        return payload
    return None


def _bound_seconds(value, open_bound):
    """A range bound on a time column: a date-time, or integer seconds (Gurux sends
    uint32 Unix time for 0.0.1.1.0.255); an unresolvable date-time is an open bound."""
    b = _date_time_payload(value)
    if b is not None:
        try:
            return cosem_datetime.datetime_seconds(b)
        except ValueError:
            return open_bound
    if value[0] in (axdr.DOUBLE_LONG_UNSIGNED, axdr.DOUBLE_LONG, axdr.LONG64,
                    axdr.LONG64_UNSIGNED):
        return value[1]
    raise DataAccessError(R.SCOPE_OF_ACCESS_VIOLATED, "range bound is not a date-time")


def _comparable(value):
    tag = value[0]
    if tag in (axdr.INTEGER, axdr.LONG, axdr.DOUBLE_LONG, axdr.LONG64, axdr.UNSIGNED,
               axdr.LONG_UNSIGNED, axdr.DOUBLE_LONG_UNSIGNED, axdr.LONG64_UNSIGNED,
               axdr.ENUM, axdr.FLOAT32, axdr.FLOAT64, axdr.BCD):
        return value[1]
    b = _date_time_payload(value)
    if b is not None:
        try:
            return cosem_datetime.datetime_seconds(b)
        except ValueError:
            return None
    return None


def _column_offsets(entry):
    """Start offsets of each element of an encoded entry structure, plus its end."""
    if entry[0] != axdr.STRUCTURE:
        raise DataAccessError(R.OTHER_REASON, "stored entry is not a structure")
    n, off = axdr.decode_length(entry, 1)
    offsets = [off]
    for _ in range(n):
        off = axdr.decode(entry, off)[1]
        offsets.append(off)
    return offsets


def _column_value(entry, col):
    offsets = _column_offsets(entry)
    return axdr.decode(entry, offsets[col])[0]


def _select_columns(out, entry, columns):
    offsets = _column_offsets(entry)
    out.append(axdr.STRUCTURE)
    out += axdr.encode_length(len(columns))
    for c in columns:
        out += entry[offsets[c]:offsets[c + 1]]
