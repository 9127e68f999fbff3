"""Prepayment after a change of supplier (SRV 6.23, CS02b by the Transitional CoS party):
the new supplier B's UTRN top-ups (SRV 2.2: CS01a on the ESME through the Token Gateway;
CS01b on the GSME, put in the GPF's queue past the DCC: see that test) are credited, and the
anti-replay record still refuses a replayed UTRN, a UTRN at a counter the old supplier A
already used, and A's UTRNs.

The defect these tests pin: both head-ends counted UTRN counters from 0, so B's first
counters were the very ones A had used on the meter, and the meter refused them as used
(alert 0x8F51). Head-ends now choose time-based UTRN counters (emulator/headend.py,
`HeadEnd.next_top_up_counter`)."""

import asyncio

import pytest

from emulator.headend import HeadEnd
from emulator.lab import ACB_EUI, ESME_EUI, GSME_EUI, SUPPLIER_EUIS, Lab
from emulator.usecases import USE_CASE_BUILDERS, BuildContext
from firmware.gbcs import codes, envelope, security, utrn

SUPPLIER_A = SUPPLIER_EUIS["A"]
SUPPLIER_B = SUPPLIER_EUIS["B"]


def run(coroutine):
    return asyncio.run(coroutine)


def credit_of(lab):
    return lab.esme.gbcs_objects.credits[0].amount


def utrn_record(lab):
    return list(lab.esme.gbcs_objects.token_gateway.record.accepted)


def top_up(lab, supplier, pence, device=ESME_EUI):
    return run(lab.run(supplier, lambda h: h.top_up(device, pence), "top-up " + supplier))


def send_utrn(lab, supplier, token, device=ESME_EUI):
    """A UTRN the head-end did not mint for this request (a replay, another party's)."""
    return run(lab.run(supplier, lambda h: h.request(
        "2.2", device, {"UTRN": token}, counter=h.next_top_up_counter()), "utrn " + supplier))


def mint(lab, supplier_eui, counter_hi, pence, device=ESME_EUI):
    """A UTRN minted with `supplier_eui`'s prepayment key for a chosen counter."""
    private = lab.pki.organisations[supplier_eui]["pp-ka"].private_key
    shared = lab.crypto.ecdh(private, lab.pki.devices[device]["ka"].public_xy)
    return utrn.mint(lab.crypto, shared, supplier_eui, device, counter_hi << 32,
                     utrn.CLASS_PENCE, pence)


def alerts_of(lab, supplier):
    alerts = run(lab.headends[supplier].collect_alerts())
    assert all(a.verified for a in alerts)
    return [a.alert_code for a in alerts]


def change_esme_to_b(lab):
    lab.routing.register_change_of_supplier(ESME_EUI, SUPPLIER_B)
    outcome = run(lab.run("B", lambda h: h.change_of_supplier(ESME_EUI), "6.23"))
    assert outcome.ok, outcome.checks
    assert lab.esme_security.anchors.get(codes.ROLE_SUPPLIER).eui == SUPPLIER_B
    assert lab.routing.get(ESME_EUI).supplier == SUPPLIER_B


@pytest.fixture
def lab():
    return Lab(seed=3, wan="direct")


def test_new_supplier_tops_up_the_esme_after_change_of_supplier(lab):
    before = credit_of(lab)
    first = top_up(lab, "A", 500)
    assert first.ok and credit_of(lab) == before + 500
    [a_counter] = utrn_record(lab)
    change_esme_to_b(lab)

    credit = credit_of(lab)
    outcome = top_up(lab, "B", 700)
    assert outcome.ok, (outcome.fields, alerts_of(lab, "B"))
    assert credit_of(lab) == credit + 700
    b_counter = lab.headends["B"].top_up_counter >> 32
    assert b_counter > a_counter                     # above every counter A used here
    assert utrn_record(lab) == [a_counter, b_counter]
    assert alerts_of(lab, "B") == []
    # and B goes on topping up
    again = top_up(lab, "B", 1250)
    assert again.ok and credit_of(lab) == credit + 700 + 1250


def test_after_change_of_supplier_replays_and_the_old_supplier_are_refused(lab):
    a_token = top_up(lab, "A", 500).fields["utrn"]
    [a_counter] = utrn_record(lab)
    change_esme_to_b(lab)
    b_token = top_up(lab, "B", 700).fields["utrn"]
    snapshot = lab.snapshot()
    credit, record = credit_of(lab), utrn_record(lab)

    # B's own UTRN again, on a fresh request counter: used
    assert not send_utrn(lab, "B", b_token).ok
    assert alerts_of(lab, "B") == [codes.ALERT_DUPLICATE_UTRN]
    # a UTRN B mints at the counter A already used on this meter: used
    assert not send_utrn(lab, "B", mint(lab, SUPPLIER_B, a_counter, 900)).ok
    assert alerts_of(lab, "B") == [codes.ALERT_DUPLICATE_UTRN]
    # A's old UTRN, and a fresh one from A (the meter no longer holds A's prepayment key),
    # carried to the meter by the responsible supplier's head-end: refused
    assert not send_utrn(lab, "B", a_token).ok
    assert alerts_of(lab, "B") == [codes.ALERT_DUPLICATE_UTRN]
    fresh = mint(lab, SUPPLIER_A, max(record) + 1, 900)
    assert not send_utrn(lab, "B", fresh).ok
    assert alerts_of(lab, "B") == [codes.ALERT_UTRN_NOT_AUTHENTIC]
    # A itself is not routed to the meter any more
    assert top_up(lab, "A", 900).response_code == "E4"

    assert credit_of(lab) == credit and utrn_record(lab) == record
    after = lab.snapshot()
    assert after["esme"]["credits"] == snapshot["esme"]["credits"]
    assert after["esme"]["utrns"] == snapshot["esme"]["utrns"]


def test_top_ups_far_apart_in_time_and_across_the_change(lab):
    """The 10 bits a UTRN carries rebuild a counter within 511 of the meter's newest
    (utrn.UtrnAntiReplay.full_counter): a head-end never jumps further than that, however
    much time passed (here a GSME wake, 30 minutes of lab time, between top-ups)."""
    credit = credit_of(lab)
    assert top_up(lab, "A", 100).ok
    lab.wake_gsme()
    assert top_up(lab, "A", 200).ok
    lab.wake_gsme()
    change_esme_to_b(lab)
    lab.wake_gsme()
    outcome = top_up(lab, "B", 300)
    assert outcome.ok, alerts_of(lab, "B")
    assert top_up(lab, "B", 400).ok
    assert credit_of(lab) == credit + 1000
    assert len(set(utrn_record(lab))) == 4


def gsme_top_up(lab, supplier, token, counter):
    """CS01b for the GSME built and protected as the DCC builds it (the ACB's MAC), put in
    the GPF's queue for the GSME's next wake."""
    device = lab.pki.devices[GSME_EUI]
    ctx = BuildContext(counter, supplier, GSME_EUI, lab.now, lab.crypto,
                       target_ka_public=device["ka"].public_xy)
    builder = USE_CASE_BUILDERS["CS01b"]
    message = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, supplier, GSME_EUI,
                                   builder.message_code, builder.build({"utrn": token}, ctx))
    acb = lab.pki.organisations[ACB_EUI]["ka"].private_key
    security.protect_mac(lab.crypto, lab.crypto.ecdh(acb, device["ka"].public_xy), message)
    lab.gpf.queue.append(message.encode())


def test_new_supplier_tops_up_the_gsme_after_change_of_supplier(lab):
    """CS01b on the GSME, across its change of supplier: A's top-up (I99, credited at the
    wake) leaves A's UTRN counter in the GSME's record; B's 6.23 runs at the next wake. B's
    UTRNs are built as the DCC builds them (the ACB's MAC) and put straight into the GPF's
    queue, so what is tested is the GSME's anti-replay record, not the path through the
    DCC (B's top-up through the DCC and the GPF: tests/e2e/test_gsme_change_of_supplier.py):
    B's UTRN at a time-based counter above A's is credited; the same UTRN again, and B's
    UTRN at the counter A used, are refused and change nothing."""
    gsme = lab.gsme
    credit = gsme.credit
    assert top_up(lab, "A", 500, GSME_EUI).response_code == "I99"      # queued at the GPF
    lab.wake_gsme()
    per_penny = (gsme.credit - credit) // 500
    assert per_penny >= 1 and gsme.credit == credit + 500 * per_penny
    [a_counter] = gsme.utrn_record.accepted

    lab.routing.register_change_of_supplier(GSME_EUI, SUPPLIER_B)
    run(lab.run("B", lambda h: h.change_of_supplier(GSME_EUI), "6.23 GSME"))
    lab.wake_gsme()
    assert lab.gsme_security.anchors.get(codes.ROLE_SUPPLIER).eui == SUPPLIER_B

    b = lab.headends["B"]
    counter = b.next_top_up_counter(GSME_EUI)
    assert counter >> 32 > a_counter
    token = mint(lab, SUPPLIER_B, counter >> 32, 700, GSME_EUI)
    credit = gsme.credit
    gsme_top_up(lab, SUPPLIER_B, token, counter)
    lab.wake_gsme()
    assert gsme.credit == credit + 700 * per_penny
    assert sorted(gsme.utrn_record.accepted) == [a_counter, counter >> 32]

    # the same UTRN again, and B's UTRN at the counter A used: refused, nothing changes
    credit, record = gsme.credit, list(gsme.utrn_record.accepted)
    gsme_top_up(lab, SUPPLIER_B, token, b.next_top_up_counter(GSME_EUI))
    lab.wake_gsme()
    gsme_top_up(lab, SUPPLIER_B, mint(lab, SUPPLIER_B, a_counter, 900, GSME_EUI),
                b.next_top_up_counter(GSME_EUI))
    lab.wake_gsme()
    assert gsme.credit == credit and list(gsme.utrn_record.accepted) == record


def test_time_based_top_up_counters(lab):
    """Lab head-ends count UTRN counters in seconds since the devices' installation."""
    a, b = lab.headends["A"], lab.headends["B"]
    lab.now = lab.installed + 39                          # lab.run adds a second
    assert top_up(lab, "A", 100).ok
    assert a.top_up_counter == 40 << 32
    # within the same second the counter still rises
    assert a.next_top_up_counter(ESME_EUI) == 41 << 32
    # another supplier later: above the first one's
    lab.now = lab.installed + 45
    assert b.next_top_up_counter(ESME_EUI) == 45 << 32
    # much later: no further than a UTRN's 10 bits reach above the last counter this
    # head-end had credited on the meter (40), nor below its own last counter
    lab.now = lab.installed + 5000
    assert a.next_top_up_counter(ESME_EUI) == (40 + 511) << 32
    # a meter it never credited: within reach of an empty record
    assert b.next_top_up_counter(GSME_EUI) == 511 << 32
    assert b.next_top_up_counter(GSME_EUI) == 512 << 32
    # a head-end without an epoch counts 1, 2, 3... as before
    plain = HeadEnd(SUPPLIER_A, lab.pki.organisations[SUPPLIER_A], lab.dcc,
                    dcc_certificate=lab.pki.organisations[ACB_EUI]["ds"].certificate,
                    crypto=lab.crypto, clock=lambda: lab.now)
    assert [plain.next_top_up_counter() for _ in range(2)] == [1 << 32, 2 << 32]
    with pytest.raises(ValueError, match="top_up_seconds"):
        HeadEnd(SUPPLIER_A, lab.pki.organisations[SUPPLIER_A], lab.dcc,
                dcc_certificate=lab.pki.organisations[ACB_EUI]["ds"].certificate,
                top_up_epoch=0, top_up_seconds=0)
