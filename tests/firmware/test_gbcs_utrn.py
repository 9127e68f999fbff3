# UTRN parsing and the GBCS 14.8 check digit on the device core (runs under MicroPython).
# Vectors: the two RTDS top-up UTRNs in shared/design/DOMAIN.md.

from firmware.gbcs import utrn


def test_check_digit_of_rtds_utrns():
    assert utrn.check_digit("7394614433204021731") == "5"
    assert utrn.check_digit("7395006788710517860") == "5"


def test_parse_rtds_utrns():
    assert utrn.parse("73946144332040217315")[:3] == (3, utrn.CLASS_POUNDS, 10)
    assert utrn.parse("73950067887105178605")[:3] == (6, utrn.CLASS_PENCE, 1250)


def test_bad_utrns_are_refused():
    for bad in ("73946144332040217316", "7394614433204021731", "7394614433204021731X", ""):
        try:
            utrn.parse(bad)
        except utrn.UtrnError as exc:
            assert exc.reason
        else:
            assert False, bad


def test_anti_replay_record():
    record = utrn.UtrnAntiReplay(size=2)
    for high in (5, 6, 7):
        record.check(high << 32)
        record.accept(high << 32)
    assert sorted(record.accepted) == [6, 7]
    for used_or_stale in (5, 6, 7):
        try:
            record.check(used_or_stale << 32)
        except utrn.UtrnError:
            pass
        else:
            assert False, used_or_stale
    record.check(8 << 32)
