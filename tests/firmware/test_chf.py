"""The comms hub (firmware/devices/chf.py): routing, device log, outstanding answers.

Stand-ins: `PlainSecurity` checks recipient and counter but no crypto (HostCrypto is
host-only; tests/emulator/test_hub_routing.py runs the real DeviceSecurity), and
`QueueingGpf` is the smallest GPF the hub's contract needs.
"""

import binascii
import json

from firmware.devices.chf import CommsHub
from firmware.dlms import access as A
from firmware.dlms import results as R
from firmware.gbcs import codes
from firmware.gbcs.device_security import GbcsRefusal, dlms_alert_payload
from firmware.gbcs.envelope import (CRA_ALERT, CRA_COMMAND, CRA_RESPONSE, GbcsMessage,
                                    parse)
from firmware.han import tunnel as T

HUB = binascii.unhexlify("00db1234567890a2")
ESME = binascii.unhexlify("00db1234567890a0")
GSME = binascii.unhexlify("00db1234567890a1")
IHD = binascii.unhexlify("00db1234567890a5")
ACB = binascii.unhexlify("90b3d51f30000002")
SUPPLIER = binascii.unhexlify("90b3d51f30010000")
NOW = 800000000

# RTDS 4.5.0 8.11: the ACCESS payloads of CCS01 / CCS02 (counter 0x516) and the answers
CCS01_PAYLOAD = binascii.unhexlify(
    "d920000516000303006800001e0300ff0102006800001e0300ff0302006800001e0300ff0203020409"
    "0800db1234567890a01601091030313233343536373839414243444546160012005a03ff")
CCS01_SUCCESS = binascii.unhexlify("da2000051600000300000003030002000200")
CCS02_PAYLOAD = binascii.unhexlify("d920000516000103006800001e0300ff0201090800db1234567890a0")
CCS02_SUCCESS = binascii.unhexlify("da2000051600000100010300")
CCS02_NOT_IN_LOG = binascii.unhexlify("da2000051700000100010301")


class PlainSecurity:
    """DeviceSecurity's interface without crypto: recipient and rising counter only."""

    def __init__(self, eui):
        self.own_eui = eui
        self.counters = {}
        self.alert_counter = 0

    def accept_command(self, message, use_case=None):
        if bytes(message.recipient) != self.own_eui:
            raise GbcsRefusal("recipient is not this device", None)
        key = bytes(message.originator)
        if message.originator_counter <= self.counters.get(key, -1):
            raise GbcsRefusal("stale counter", codes.ALERT_FAILED_AUTHENTICATION_OTHER)
        self.counters[key] = message.originator_counter

    def respond(self, command, payload, date_time):
        return GbcsMessage(CRA_RESPONSE, command.originator_counter, self.own_eui,
                           bytes(command.originator), command.message_code, payload,
                           date_time).encode()

    def dlms_alert(self, alert_code, recipient, date_time):
        self.alert_counter += 1
        payload = dlms_alert_payload(alert_code, self.alert_counter, date_time)
        return GbcsMessage(CRA_ALERT, self.alert_counter, self.own_eui, bytes(recipient),
                           codes.alert_message_code(alert_code), payload).encode()

    def update_credentials(self, message):
        raise GbcsRefusal("not in this stand-in", codes.ALERT_INTEGRITY_CHECK_FAILED)


class QueueingGpf:
    """Answers GCS13a reads at once (originator: the GSME), queues the rest for the wake."""

    def __init__(self, gsme_eui):
        self.gsme_eui = gsme_eui
        self.queue = []
        self.seen = []
        self.reassembler = T.Reassembler()

    def receive_gbcs(self, data, now):
        message = parse(data)
        if message.message_code == codes.GCS13A:
            return [GbcsMessage(CRA_RESPONSE, message.originator_counter, self.gsme_eui,
                                bytes(message.originator), message.message_code,
                                b"\x01\x09mirror").encode()]
        self.queue.append(bytes(data))
        return []

    def receive_tunnel(self, frame, now):
        got = self.reassembler.feed(frame, now)
        if got is None:
            return []
        kind, remaining, payload = got
        self.seen.append(kind)
        if kind == T.GET and self.queue:
            return [T.get_response(len(self.queue) - 1, self.queue.pop(0))]
        if kind == T.GET:
            return [T.get_response(0)]
        return []


class Han:
    def __init__(self):
        self.sent = []

    def __call__(self, eui, data):
        self.sent.append((bytes(eui), bytes(data)))


def make(gpf=None, **options):
    han = Han()
    return CommsHub(HUB, PlainSecurity(HUB), han, gpf, **options), han


def command(recipient, counter, payload=b"\xd9\x20", code=codes.ECS17B, originator=SUPPLIER):
    return GbcsMessage(CRA_COMMAND, counter, originator, recipient, code, payload).encode()


def response(device, counter, payload=b"\xda\x20", code=codes.ECS17B, recipient=SUPPLIER):
    return GbcsMessage(CRA_RESPONSE, counter, device, recipient, code, payload).encode()


def alert(device, counter, recipient=SUPPLIER):
    return GbcsMessage(CRA_ALERT, counter, device, recipient, codes.GENERIC_NON_CRITICAL_ALERT,
                       b"\x0f").encode()


def ccs(code, payload, counter=0x516):
    """An ACB command to the hub; the ACCESS long-invoke-id follows the counter."""
    invoke = A.gbcs_long_invoke_id(counter)
    payload = payload[:1] + invoke.to_bytes(4, "big") + payload[5:]
    return command(HUB, counter, payload, code, ACB)


def answer_payload(out):
    assert len(out) == 1
    return parse(out[0]).payload


def commissioned(**options):
    hub, han = make(**options)
    assert answer_payload(hub.receive_wan(ccs(codes.CCS01, CCS01_PAYLOAD), NOW)) == CCS01_SUCCESS
    return hub, han


def test_ccs01_adds_the_device_and_answers_as_rtds():
    hub, han = commissioned()
    assert hub.knows(ESME) and not hub.knows(GSME)
    entry = hub.device_log["00db1234567890a0"]
    assert entry["type"] == 1 and binascii.unhexlify(entry["install_code"]) == b"0123456789ABCDEF"
    assert hub.joining is True and hub.join_timeout == 90
    reply = parse(hub.receive_wan(ccs(codes.CCS02, CCS02_PAYLOAD, 0x517), NOW)[0])
    assert reply.cra_flag == CRA_RESPONSE and reply.recipient == ACB
    assert reply.originator_counter == 0x517 and han.sent == []


def test_ccs02_removes_then_answers_hardware_fault_as_rtds_error():
    hub, _ = commissioned()
    payload = answer_payload(hub.receive_wan(ccs(codes.CCS02, CCS02_PAYLOAD, 0x600), NOW))
    assert A.decode_response(payload).results[0].result == R.ACTION_SUCCESS
    assert not hub.knows(ESME)
    hub2, _ = commissioned()
    hub2.remove_device(ESME)
    assert answer_payload(hub2.receive_wan(ccs(codes.CCS02, CCS02_PAYLOAD, 0x517), NOW)) \
        == CCS02_NOT_IN_LOG


def test_command_for_a_logged_device_goes_out_in_a_put_and_its_answer_comes_back_once():
    hub, han = commissioned()
    cmd = command(ESME, 0x1001)
    assert hub.receive_wan(cmd, NOW) == []
    assert han.sent == [(ESME, T.put(cmd))]
    answer = response(ESME, 0x1001)
    assert hub.receive_han(ESME, T.put(answer), NOW + 1) == [answer]
    assert hub.receive_han(ESME, T.put(answer), NOW + 2) == []        # repeated
    assert hub.receive_han(ESME, T.put(response(ESME, 0x1002)), NOW + 2) == []   # unasked
    assert hub.outstanding == {}


def test_alerts_go_up_once_per_counter():
    hub, _ = commissioned()
    a = alert(ESME, 5)
    assert hub.receive_han(ESME, T.put(a), NOW) == [a]
    assert hub.receive_han(ESME, T.put(a), NOW) == []
    b = alert(ESME, 6)
    assert hub.receive_han(ESME, T.put(b), NOW) == [b]


def test_unknown_recipient_is_silent_and_nothing_is_sent():
    hub, han = commissioned()
    before = json.dumps(hub.state())
    assert hub.receive_wan(command(IHD, 1), NOW) == []
    assert han.sent == [] and json.dumps(hub.state()) == before
    assert hub.stats["unknown recipient"] == 1


def test_bad_wan_input_changes_nothing():
    hub, han = commissioned()
    before = json.dumps(hub.state())
    cmd = command(ESME, 9)
    for bad in (b"", b"\x00", cmd[:-1], cmd + b"\x00", b"\xdd" + cmd,
                response(ESME, 9, recipient=HUB), alert(HUB, 3)):
        assert hub.receive_wan(bad, NOW) == []
    assert han.sent == [] and json.dumps(hub.state()) == before


def test_refused_hub_command_raises_the_alert_and_changes_nothing():
    hub, _ = commissioned()
    before = json.dumps(hub.state())
    out = hub.receive_wan(ccs(codes.CCS02, CCS02_PAYLOAD, 0x516), NOW)    # replayed counter
    notice = parse(out[0])
    assert notice.cra_flag == CRA_ALERT and notice.recipient == ACB
    assert notice.payload[9:11] == b"\x8f\x53"
    assert json.dumps(hub.state()) == before and hub.knows(ESME)


def test_wrong_shape_and_wrong_types_are_refused_without_change():
    hub, _ = make()
    out = hub.receive_wan(ccs(codes.CCS01, CCS02_PAYLOAD, 0x520), NOW)
    results = A.decode_response(answer_payload(out)).results
    assert [r.result for r in results] == [R.ACTION_READ_WRITE_DENIED]
    bad = bytearray(CCS01_PAYLOAD)
    bad[bad.index(b"\x12\x00\x5a")] = 0x10        # join timeout as a (signed) long
    out = hub.receive_wan(ccs(codes.CCS01, bytes(bad), 0x521), NOW)
    results = [r.result for r in A.decode_response(answer_payload(out)).results]
    assert results == [R.OTHER_REASON, R.TYPE_UNMATCHED, R.OTHER_REASON]
    assert hub.device_log == {} and hub.join_timeout == 0
    garbage = hub.receive_wan(command(HUB, 0x522, b"\xd9\x00", codes.CCS01, ACB), NOW)
    assert parse(garbage[0]).cra_flag == CRA_ALERT


def test_full_device_log_and_impossible_euis():
    hub, _ = make(max_devices=0)
    out = hub.receive_wan(ccs(codes.CCS01, CCS01_PAYLOAD), NOW)
    results = [r.result for r in A.decode_response(answer_payload(out)).results]
    assert results == [R.ACTION_TEMPORARY_FAILURE, R.OTHER_REASON, R.OTHER_REASON]
    hub, _ = make()
    own = CCS01_PAYLOAD.replace(ESME, HUB)
    out = hub.receive_wan(ccs(codes.CCS01, own, 0x530), NOW)
    assert A.decode_response(answer_payload(out)).results[0].result == R.ACTION_OTHER_REASON
    assert hub.device_log == {}


def test_removed_device_gets_nothing_and_is_not_heard():
    hub, han = commissioned()
    hub.receive_wan(command(ESME, 0x2000), NOW)
    hub.receive_wan(ccs(codes.CCS02, CCS02_PAYLOAD, 0x600), NOW)
    han.sent = []
    assert hub.receive_wan(command(ESME, 0x2001), NOW) == [] and han.sent == []
    assert hub.receive_han(ESME, T.put(response(ESME, 0x2000)), NOW) == []
    assert hub.outstanding == {}


def test_long_messages_are_segmented_both_ways():
    hub, han = commissioned()
    big = command(ESME, 0x3000, b"\xd9" + b"\x55" * 4000)
    hub.receive_wan(big, NOW)
    parts = [data for eui, data in han.sent]
    assert len(parts) == 3 and b"".join(parts) == T.put(big)
    answer = response(ESME, 0x3000, b"\xda" + b"\x66" * 3500)
    got = [hub.receive_han(ESME, p, NOW) for p in T.segments(T.put(answer))]
    assert got == [[], [], [answer]]


def test_a_node_speaks_only_for_itself_and_only_from_the_log():
    hub, _ = commissioned()
    hub.receive_wan(command(ESME, 0x4000), NOW)
    forged = response(GSME, 0x4000)
    assert hub.receive_han(ESME, T.put(forged), NOW) == []
    assert hub.receive_han(IHD, T.put(response(IHD, 1)), NOW) == []
    assert hub.receive_han(ESME, b"\x07junk", NOW) == []
    assert hub.receive_han(ESME, T.put(response(ESME, 0x4000)), NOW) != []


def test_a_get_from_a_mains_device_finds_nothing_queued():
    hub, han = commissioned()
    assert hub.receive_han(ESME, T.get(), NOW) == []
    assert han.sent == [(ESME, T.get_response(0))]


def test_answers_after_the_window_are_not_forwarded():
    hub, _ = commissioned(answer_window=60)
    hub.receive_wan(command(ESME, 0x5000), NOW)
    assert hub.receive_han(ESME, T.put(response(ESME, 0x5000)), NOW + 61) == []


def test_outstanding_table_is_bounded():
    hub, _ = commissioned(max_outstanding=4)
    for i in range(10):
        hub.receive_wan(command(ESME, 0x6000 + i), NOW + i)
    assert len(hub.outstanding) == 4
    assert hub.receive_han(ESME, T.put(response(ESME, 0x6000)), NOW + 20) == []
    assert hub.receive_han(ESME, T.put(response(ESME, 0x6009)), NOW + 20) != []


def test_gsme_commands_go_to_the_gpf_which_answers_or_queues():
    gpf = QueueingGpf(GSME)
    hub, han = make(gpf)
    hub.add_device(GSME, 0)
    read = command(GSME, 0x7000, b"\x01\x09read", codes.GCS13A)
    out = hub.receive_wan(read, NOW)
    assert len(out) == 1 and parse(out[0]).originator == GSME and hub.outstanding == {}
    valve = command(GSME, 0x7001, b"\x01\x09valve", codes.GCS39)
    assert hub.receive_wan(valve, NOW) == [] and gpf.queue == [valve] and han.sent == []
    # the GSME wakes and polls: the queued command comes down in a GET-RESPONSE
    assert hub.receive_han(GSME, T.get(), NOW + 1800) == []
    assert han.sent == [(GSME, T.get_response(0, valve))]
    done = response(GSME, 0x7001, b"\x01\x09ok", codes.GCS39)
    assert hub.receive_han(GSME, T.put(done), NOW + 1801) == [done]
    assert hub.receive_han(GSME, T.put(done), NOW + 1802) == []
    assert gpf.seen == [T.GET, T.PUT, T.PUT]


def test_the_gsme_is_heard_only_once_in_the_log():
    gpf = QueueingGpf(GSME)
    hub, han = make(gpf)
    assert hub.receive_han(GSME, T.get(), NOW) == [] and han.sent == [] and gpf.seen == []


def test_state_survives_a_restart():
    hub, han = commissioned()
    hub.receive_wan(command(ESME, 0x8000), NOW)
    hub.receive_han(ESME, T.put(alert(ESME, 40)), NOW)
    saved = json.loads(json.dumps(hub.state()))
    again = CommsHub.restore(saved, PlainSecurity(HUB), han)
    assert again.eui == HUB and again.knows(ESME) and again.join_timeout == 90
    assert again.receive_han(ESME, T.put(alert(ESME, 40)), NOW) == []
    answer = response(ESME, 0x8000)
    assert again.receive_han(ESME, T.put(answer), NOW + 5) == [answer]
    assert json.dumps(again.state()) != json.dumps(saved)


def test_a_long_gsme_answer_reaches_the_gpf_segment_by_segment_and_goes_up_once():
    gpf = QueueingGpf(GSME)
    hub, han = make(gpf)
    hub.add_device(GSME, 0)
    hub.receive_wan(command(GSME, 0x9000, b"\x01\x09hh", codes.GCS17), NOW)
    hub.receive_han(GSME, T.get(), NOW + 1)
    answer = response(GSME, 0x9000, b"\x01\x09" + b"\x42" * 3200, codes.GCS17)
    got = [hub.receive_han(GSME, p, NOW + 2) for p in T.segments(T.put(answer))]
    assert got == [[], [], [answer]]
    assert gpf.seen == [T.GET, T.PUT]


def test_a_gpf_that_raises_does_not_take_the_hub_down():
    class Broken(QueueingGpf):
        def receive_gbcs(self, data, now):
            raise RuntimeError("boom")

        def receive_tunnel(self, frame, now):
            raise RuntimeError("boom")
    hub, han = make(Broken(GSME))
    hub.add_device(GSME, 0)
    assert hub.receive_wan(command(GSME, 1, b"\x01\x09", codes.GCS13A), NOW) == []
    assert hub.receive_han(GSME, T.get(), NOW) == [] and han.sent == []
    assert hub.stats["device port raised"] == 2
