"""Run under the `micropython` binary: one ESME serves its whole HH profile by block transfer.

    MICROPYPATH=.frozen:<repo> micropython -X heapsize=128K benchmarks/mp_profile_read.py \
        PROFILE.json START NOW

Builds the board's `MeterCore` from the profile JSON, runs it from START to NOW, then
plays the public client over a TCP-wrapper connection in this process: AARQ, GET of the
HH profile buffer (1.0.99.1.0.255 attribute 2) and GET-Request-Next until the last
block, RLRQ. Prints one JSON line: device read time (us), blocks, bytes, the HH entries served, and
the heap: gc.mem_free before and after the firmware import (the unix port keeps imported
bytecode on the GC heap; a board runs it frozen in flash), before the read, and the lowest
seen after any request, both with its garbage and after a gc.collect() (the live heap).
The read time counts the device's work only (`receive` calls), not the heap probes. Imports only `firmware/` and MicroPython's
stdlib, so it also runs under CPython for a comparison.
"""

import gc
import json
import sys
import time

gc.collect()
HEAP_FREE_BEFORE_IMPORT = gc.mem_free() if hasattr(gc, "mem_free") else 0

from firmware.board.meter import MeterCore   # noqa: E402 (measured: bytecode on the heap)
from firmware.dlms import apdu as A          # noqa: E402
from firmware.dlms import obis as O          # noqa: E402

# AARQ of the public client (SAP 16), LN referencing, no security, xDLMS
# InitiateRequest proposing conformance 0x00401E5D and max PDU 0xFFFF (Green Book 9.3.2,
# 9.4): the bytes Gurux's GXDLMSClient.aarqRequest() sends.
AARQ = bytes.fromhex("601da109060760857405080101be10040e01000000065f1f0400401e5dffff")
RLRQ = bytes.fromhex("6203800100")     # release-request, reason normal (Green Book 9.4)
INVOKE = 0xC1
CONN = 1
PUBLIC_CLIENT = 16
SERVER_WPORT = 1


def ticks_ms():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.time() * 1000)


def ticks_us():
    if hasattr(time, "ticks_us"):
        return time.ticks_us()
    return int(time.time() * 1000000)


def ticks_diff(a, b):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(a, b)
    return a - b


def mem_free():
    return gc.mem_free() if hasattr(gc, "mem_free") else 0


def wrap(apdu):
    # IEC 62056-47 wrapper header: version 1, source wPort, destination wPort, length
    n = len(apdu)
    return bytes([0, 1, 0, PUBLIC_CLIENT, 0, SERVER_WPORT, n >> 8, n & 0xFF]) + apdu


def unwrap(data):
    if len(data) < 8:
        raise ValueError("short wrapper reply: %d bytes" % len(data))
    n = data[6] << 8 | data[7]
    if len(data) != 8 + n:
        raise ValueError("wrapper length %d, got %d" % (n, len(data) - 8))
    return data[8:]


class Meter:
    def __init__(self, core):
        self.core = core
        self.lowest_free = mem_free()
        self.lowest_live_free = self.lowest_free
        self.bytes_in = 0
        self.busy_us = 0

    def ask(self, apdu):
        t0 = ticks_us()
        reply = self.core.receive(CONN, wrap(apdu))
        self.busy_us += ticks_diff(ticks_us(), t0)
        self.bytes_in += len(reply)
        free = mem_free()                       # garbage of this request included
        if free < self.lowest_free:
            self.lowest_free = free
        gc.collect()                            # live heap with the reply still held
        free = mem_free()
        if free < self.lowest_live_free:
            self.lowest_live_free = free
        return unwrap(reply)


def read_profile(meter):
    request = A.GetRequestNormal(INVOKE, A.AttributeDescriptor(7, O.HH_PROFILE, 2))
    answer = A.decode_apdu(meter.ask(request.encode()))
    blocks = 0
    size = 0
    head = b""          # the client keeps nothing but the array header: a board's RAM
    while isinstance(answer, A.GetResponseWithDatablock):
        if answer.raw_data is None:
            raise ValueError("block refused: %r" % answer.data_access_result)
        blocks += 1
        size += len(answer.raw_data)
        if not head:
            head = bytes(answer.raw_data[:8])
        if answer.last_block:
            return blocks, size, head
        nxt = A.GetRequestNext(INVOKE, answer.block_number)
        answer = A.decode_apdu(meter.ask(nxt.encode()))
    if answer.result.data is None:
        raise ValueError("GET refused: %r" % answer.result.data_access_result)
    return 0, 0, b""


def entries_in(raw):
    # the buffer is an array: tag 01 then the A-XDR length (Green Book 9.5 / IEC 61334-6)
    if raw[0] != 1:
        raise ValueError("buffer is not an array")
    n = raw[1]
    if n < 0x80:
        return n
    count = 0
    for b in raw[2:2 + (n & 0x7F)]:
        count = count << 8 | b
    return count


def main(argv):
    profile_path, start, now = argv[1], int(argv[2]), int(argv[3])
    with open(profile_path) as f:
        profile = json.load(f)
    gc.collect()
    heap_after_import = mem_free()
    core = MeterCore(profile, start, seed=1)
    t0 = ticks_ms()
    core.advance(now)
    simulate_ms = ticks_diff(ticks_ms(), t0)
    gc.collect()
    free_before_read = mem_free()
    core.open(CONN, "wrapper")
    meter = Meter(core)
    aare = meter.ask(AARQ)
    if aare[0] != 0x61:
        raise ValueError("no AARE")
    blocks, size, head = read_profile(meter)
    meter.ask(RLRQ)
    read_us = meter.busy_us           # device time only: no gc.collect of the probe
    core.close(CONN)
    print(json.dumps({
        "implementation": sys.implementation.name,
        "simulate_ms": simulate_ms,
        "read_us": read_us,
        "blocks": blocks,
        "buffer_bytes": size,
        "entries": entries_in(head) if head else 0,
        "bytes_from_device": meter.bytes_in,
        "heap_free_before_import": HEAP_FREE_BEFORE_IMPORT,
        "heap_free_after_import": heap_after_import,
        "heap_free_before_read": free_before_read,
        "heap_free_lowest": meter.lowest_free,
        "heap_free_lowest_live": meter.lowest_live_free,
    }))


main(sys.argv)
