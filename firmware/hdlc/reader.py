"""Finds HDLC frames in a byte stream that arrives in any chunking.

IEC 62056-46 has no byte stuffing: a frame is a flag, a format field whose length says
where the closing flag must be, and that flag. So a candidate is any 0x7E followed by a
type-3 format field; it is a frame when the byte `length + 1` further on is a flag and
the HCS/FCS check. Anything else is noise and is skipped one flag at a time, so the
reader falls back into step on the next good frame (consecutive frames may share one
flag: the closing flag of a frame is kept as a possible opening flag).

Bounded memory: while a candidate waits for the rest of its bytes the buffer holds at
most one maximum-length frame (2049 bytes); bytes before the first flag are dropped.
A noise burst that looks like the start of a long frame could hold up the real frames
behind it until the claimed length arrives; so while waiting, the reader looks further
on for a complete frame with a good FCS and, when it finds one, drops the candidate as
noise. (The only cost: a frame whose information field itself holds a complete valid
HDLC frame, arriving in pieces, would be split there. DLMS APDUs do not do that.)
The look-ahead is incremental, so input a byte at a time costs linear work even when
it is full of flags or of fake headers.
"""

from firmware.hdlc.frame import (FLAG, MIN_FRAME_LENGTH, HdlcError, frame_length,
                                 parse_frame)

_NEED_MORE = 0
_NOISE = 1
_FLAG = b"\x7e"
# How many later candidates that still wait for bytes the look-ahead keeps an eye on.
# Beyond that, a frame hiding behind more fake headers is found once the first
# candidate is settled (at most one maximum-length frame later).
MAX_WATCHED = 8


class FrameReader:
    def __init__(self):
        self._buf = bytearray()
        self._pos = 0
        self._reset_look(-1)

    def feed(self, data):
        if self._pos:
            shift = self._pos
            self._buf = self._buf[shift:]
            self._pos = 0
            self._look_start -= shift
            self._look_from -= shift
            self._watched = [q - shift for q in self._watched]
        self._buf.extend(data)

    def buffered(self):
        """Bytes held back: the start of a frame still arriving."""
        return len(self._buf) - self._pos

    def clear(self):
        self._buf = bytearray()
        self._pos = 0
        self._reset_look(-1)

    def next_frame(self):
        """The next complete good frame (an HdlcFrame), or None until more bytes come."""
        buf = self._buf
        pos = self._pos
        while True:
            start = buf.find(_FLAG, pos)
            if start < 0:
                self.clear()
                return None
            found = self._candidate(start)
            if found == _NEED_MORE:
                self._pos = start
                return self._look_past(start)
            if found == _NOISE:
                pos = start + 1
                continue
            return found

    def _reset_look(self, start):
        self._look_start = start      # the waiting candidate the look-ahead is past
        self._look_from = start + 1   # flags before this were examined already
        self._watched = []            # later candidates still waiting for bytes

    def _look_past(self, start):
        """A complete good frame after the waiting candidate at `start`, or None.

        Incremental, so a frame arriving a byte at a time costs linear work: flags
        already judged noise are not looked at again, and at most MAX_WATCHED later
        candidates that still wait for bytes are re-checked on each call.
        """
        if self._look_start != start:
            self._reset_look(start)
        still = []
        for flag in self._watched:
            found = self._candidate(flag)
            if found == _NEED_MORE:
                still.append(flag)
            elif found != _NOISE:
                self._reset_look(-1)
                return found
        self._watched = still
        buf = self._buf
        while len(self._watched) < MAX_WATCHED:
            flag = buf.find(_FLAG, self._look_from)
            if flag < 0:
                self._look_from = len(buf)
                return None
            self._look_from = flag + 1
            found = self._candidate(flag)
            if found == _NEED_MORE:
                self._watched.append(flag)
            elif found != _NOISE:
                self._reset_look(-1)
                return found
        return None

    def _candidate(self, start):
        """A parsed frame at buf[start] (consumed), _NEED_MORE or _NOISE."""
        buf = self._buf
        if len(buf) - start < 3:
            return _NEED_MORE
        length = frame_length(buf, start + 1)
        if length < MIN_FRAME_LENGTH:
            return _NOISE
        end = start + length + 2
        if end > len(buf):
            return _NEED_MORE
        if buf[end - 1] != FLAG:
            return _NOISE
        try:
            frame = parse_frame(buf, start, end)
        except HdlcError:
            return _NOISE
        self._pos = end - 1
        return frame
