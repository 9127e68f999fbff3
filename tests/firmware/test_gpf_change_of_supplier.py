# The GPF follows a change of supplier (CS02b) the GSME made, inside firmware/ (runs under
# MicroPython; stand-in crypto and toy certificates from test_gbcs_device_security). The GPF
# queues the CS02b like any command and applies it to its own anchors only when the GSME's
# response to it passes through; tests/e2e/test_gsme_change_of_supplier.py runs the same
# through the whole lab with P-256.

import json

from firmware.devices import gpf as F
from firmware.gbcs import codes, credentials, envelope
from firmware.gbcs.device_security import pending_credentials_alert
from firmware.han import tunnel

try:
    from tests.firmware import test_gbcs_device_security as S
except ImportError:
    import test_gbcs_device_security as S

NOW = 1700000000
GCS32 = codes.use_case("GCS32")[0]


def _gpf():
    return F.GasProxyFunction(S.DEVICE, S._cos_device())


def _offered(proxy, now=NOW):
    """The GSME's GET; the command the GPF hands over (b"" when none)."""
    reassembler = tunnel.Reassembler()
    got = None
    for frame in proxy.receive_tunnel(tunnel.get(), now):
        got = reassembler.feed(frame, now)
    return got[2]


def _put(proxy, message, now=NOW):
    for frame in tunnel.segments(tunnel.put(message)):
        proxy.receive_tunnel(frame, now)


def _gsme_runs(gsme, data):
    """The GSME's own security runs the CS02b it was handed; its response."""
    command = envelope.parse(data)
    gsme.accept_command(command)
    return gsme.respond(command, gsme.update_credentials(command), None)


def _supplier(proxy):
    return proxy.security.anchors.get(codes.ROLE_SUPPLIER).eui


def _valve(counter, originator=S.SUPPLIER, signer="supplier-ds"):
    return S._command(GCS32, counter, originator=originator, signer=signer).encode()


def _alert_codes(out):
    return [envelope.parse(raw).payload[3:5] for raw in out]


def test_the_gpf_takes_the_new_anchors_when_the_gsme_answers_the_cs02b():
    proxy, gsme = _gpf(), S._cos_device()
    cos = S._change_of_supplier(60).encode()
    assert proxy.receive_gbcs(cos, NOW) == [] and proxy.queue == [cos]
    # queued, not yet run by the GSME: the GPF still obeys the old supplier only
    assert _supplier(proxy) == S.SUPPLIER
    assert proxy.receive_gbcs(_valve(5), NOW) == [] and len(proxy.queue) == 2
    offered = _offered(proxy)
    assert offered == cos and _supplier(proxy) == S.SUPPLIER
    _put(proxy, _gsme_runs(gsme, offered))
    assert proxy.queue == [_valve(5)] and proxy.offers == 0
    assert _supplier(proxy) == S.NEW_SUPPLIER == gsme.anchors.get(codes.ROLE_SUPPLIER).eui
    assert proxy.security.anchors.state() == gsme.anchors.state()
    assert proxy.take_upstream() != []                      # the GSME's answer goes up

    # the old supplier is refused with the alert the ESME gives it; nothing is queued
    queue = list(proxy.queue)
    out = proxy.receive_gbcs(_valve(6), NOW)
    assert len(out) == 1 and envelope.parse(out[0]).recipient == S.ACB
    assert _alert_codes(out) == [bytes((codes.ALERT_SOURCE_NOT_AUTHORISED >> 8,
                                        codes.ALERT_SOURCE_NOT_AUTHORISED & 0xFF))]
    assert proxy.queue == queue
    # the new supplier is obeyed (its counters start from the floor the CS02b set)
    assert proxy.receive_gbcs(_valve(1, S.NEW_SUPPLIER, "new-ds"), NOW) == []
    assert len(proxy.queue) == 2

    # the new anchors survive a state round trip into a GPF that left the factory with A's
    saved = json.loads(json.dumps(proxy.state()))
    again = _gpf()
    again.load_state(saved)
    assert _supplier(again) == S.NEW_SUPPLIER and again.state() == saved


def test_a_cs02b_the_gsme_never_answers_changes_nothing_at_the_gpf():
    proxy = _gpf()
    anchors = json.dumps(proxy.security.anchors.state())
    proxy.receive_gbcs(S._change_of_supplier(60).encode(), NOW)
    for _ in range(proxy.max_offers):
        assert _offered(proxy) != b""                       # every offer lost on the HAN
    assert _offered(proxy) == b"" and proxy.queue == []    # dropped, 0x8F84 raised
    assert json.dumps(proxy.security.anchors.state()) == anchors
    assert proxy.receive_gbcs(_valve(5), NOW) == [] and len(proxy.queue) == 1


def test_an_answer_that_is_not_an_outcome_or_not_the_gsmes_changes_nothing():
    proxy, gsme = _gpf(), S._cos_device()
    anchors = json.dumps(proxy.security.anchors.state())
    cos = S._change_of_supplier(60).encode()
    proxy.receive_gbcs(cos, NOW)
    offered = _offered(proxy)
    command = envelope.parse(offered)
    gsme.accept_command(command)
    # a response to it whose payload is no CS02b outcome: settled, nothing applied
    _put(proxy, gsme.respond(command, b"\x05\x00", None))
    assert proxy.queue == [] and json.dumps(proxy.security.anchors.state()) == anchors


def test_a_later_cs02b_queued_behind_keeps_its_counter():
    proxy, gsme = _gpf(), S._cos_device()
    first, second = S._change_of_supplier(60).encode(), S._change_of_supplier(61).encode()
    proxy.receive_gbcs(first, NOW)
    proxy.receive_gbcs(second, NOW)
    assert len(proxy.queue) == 2
    _put(proxy, _gsme_runs(gsme, _offered(proxy)))
    assert _supplier(proxy) == S.NEW_SUPPLIER
    assert proxy.security.last_counter(S.TRANSCOS) == 61    # not moved back to 60
    assert proxy.receive_gbcs(S._change_of_supplier(61).encode(), NOW) != []   # a replay
    _put(proxy, _gsme_runs(gsme, _offered(proxy)))
    assert proxy.queue == [] and proxy.security.last_counter(S.TRANSCOS) == 61


def test_a_future_dated_cs02b_runs_at_the_gpf_when_the_gsme_reports_it_ran():
    proxy, gsme = _gpf(), S._cos_device()
    genuine = S._change_of_supplier(60)
    command = credentials.parse_command(genuine.payload)
    command.execution_date_time = "20231201000000Z"
    dated = S._command(genuine.message_code, 60, originator=S.TRANSCOS, signer="transcos-ds",
                       payload=credentials.encode_command(command)).encode()
    proxy.receive_gbcs(dated, NOW)
    _put(proxy, _gsme_runs(gsme, _offered(proxy)))
    assert proxy.queue == [] and _supplier(proxy) == S.SUPPLIER       # stored, not run
    assert proxy.security.pending_credentials == gsme.pending_credentials
    # the GSME's pending one runs at its time; its 0x00CB alert passes through the GPF
    assert pending_credentials_alert(gsme, NOW) == []                  # 2023-11-14
    [alert] = pending_credentials_alert(gsme, NOW + 30 * 86400)
    assert gsme.anchors.get(codes.ROLE_SUPPLIER).eui == S.NEW_SUPPLIER
    _put(proxy, alert)
    assert _supplier(proxy) == S.NEW_SUPPLIER and proxy.security.pending_credentials is None
    assert proxy.security.anchors.state() == gsme.anchors.state()
