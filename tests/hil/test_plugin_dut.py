"""The `dut` fixture, capability markers, strict skips and the per-DUT frame log, through
pytest itself (pytester)."""

pytest_plugins = ["pytester"]

INPROCESS = "inprocess:esme-single-phase"

DUT_TESTS = '''
import pytest

CLOCK = "0.0.1.0.0.255"
# Get-Request-Normal (Green Book 9.5): C0 01 invoke-id, class 8, 0.0.1.0.0.255, attr 2, no selection
GET_CLOCK = bytes.fromhex("c001c1000800000100 00ff0200".replace(" ", ""))


def test_get_decodes_values(dut):
    assert dut.get("1.0.1.8.0.255", 3) == (2, [(15, 0), (22, 30)])
    tag, ldn = dut.get("0.0.42.0.0.255", 2)
    assert tag == 9 and len(ldn) == 16


def test_request_returns_a_decoded_frame_and_expect_finds_it(dut):
    dut.associate("public")
    frame = dut.request(GET_CLOCK)
    assert frame.apdu == "GetResponseNormal"
    assert frame.fields["result"]["data"][0] == 9
    found = dut.expect(lambda f: f.apdu == "GetResponseNormal")
    assert found is frame


def test_expect_times_out_with_what_it_saw(dut):
    dut.associate("public")
    dut.request(GET_CLOCK)
    dut.expect(lambda f: f.apdu == "GetResponseNormal")
    with pytest.raises(AssertionError, match="no matching frame"):
        dut.expect(lambda f: f.apdu == "DataNotification", timeout=0.2)


def test_raw_bytes_snrm_gets_ua(dut):
    # SNRM from client 0x10 to server (1, 0x10), IEC 62056-46: UA comes back (control 73)
    dut.write(bytes.fromhex("7ea00802212193 05d17e".replace(" ", "")))
    # flag, format + length, destination (client 0x10), source (server 1/0x10), UA
    answer = dut.expect_bytes("7ea0..21022173")
    assert answer.startswith(bytes.fromhex("7ea0"))


@pytest.mark.requires("power_cycle")
def test_an_acknowledged_set_survives_a_power_cut(dut):
    from emulator.client import cosem_date_time
    from firmware.dlms.cosem_datetime import datetime_seconds
    dut.associate("management")
    before = datetime_seconds(dut.get(CLOCK, 2)[1])
    dut.set(CLOCK, 2, (9, cosem_date_time(before + 7200)))
    dut.power_cycle()
    after = datetime_seconds(dut.get(CLOCK, 2)[1])
    # the acknowledged SET is still there and the clock never went back; an upper bound
    # of an hour only (a restored core currently starts its clock up to 900 s ahead)
    assert before + 7200 <= after <= before + 7200 + 3600


@pytest.mark.requires("warp_drive")
def test_needs_what_no_meter_has(dut):
    raise AssertionError("must not run")
'''


def test_dut_fixture_api_on_the_inprocess_dut(pytester):
    pytester.makepyfile(test_dut_api=DUT_TESTS)
    result = pytester.runpytest_inprocess("--dut", INPROCESS, "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=5, skipped=1)
    result.stdout.fnmatch_lines(["*DUT lacks capability*warp_drive*"])
    assert result.ret == 0
    log = pytester.path / "hil-logs" / "inprocess-esme-single-phase" / \
        "test_dut_api.py_test_request_returns_a_decoded_frame_and_expect_finds_it.log"
    text = log.read_text()
    assert ">> 7ea0" in text and "<< 7ea0" in text          # hex, both directions
    assert "xdlms: GetRequestNormal Clock 0.0.1.0.0.255" in text   # and decoded
    assert "acse: AARE result 0" in text


def test_an_unexpected_skip_fails_the_run(pytester):
    pytester.makepyfile(test_skips="""
        import pytest

        def test_passes(dut):
            assert dut.get("0.0.1.0.0.255", 2)[0] == 9

        def test_skips_for_no_capability_reason(dut):
            pytest.skip("the fixture looked at the weather")
        """)
    result = pytester.runpytest_inprocess("--dut", INPROCESS, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*unexpected skips*the run fails*",
                                 "*test_skips_for_no_capability_reason*weather*"])
    relaxed = pytester.runpytest_inprocess("--dut", INPROCESS, "--no-hil-strict-skips",
                                           "-p", "no:cacheprovider")
    assert relaxed.ret == 0


def test_a_module_skipped_whole_fails_the_run_too(pytester):
    pytester.makepyfile(test_module_skip="""
        import pytest
        pytest.skip("this rig has no meters today", allow_module_level=True)

        def test_never(dut):
            pass
        """, test_fine="""
        def test_fine(dut):
            assert dut.get("0.0.1.0.0.255", 2)[0] == 9
        """)
    result = pytester.runpytest_inprocess("--dut", INPROCESS, "-p", "no:cacheprovider")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*unexpected skips*", "*test_module_skip.py*no meters today*"])


def test_without_dut_the_plugin_leaves_ordinary_tests_alone(pytester):
    pytester.makepyfile(test_plain="""
        import pytest

        def test_plain():
            assert 1 + 1 == 2

        def test_skipped_as_usual():
            pytest.skip("not today")

        @pytest.mark.requires("gbcs")
        def test_marked_but_no_dut():
            assert True

        def test_wants_a_dut(dut):
            raise AssertionError("must not run without --dut")
        """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--strict-markers", "-rs")
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*no --dut given*"])
    assert result.ret == 0
    assert not (pytester.path / "hil-logs").exists()


def test_hil_scenarios_without_dut_is_a_usage_error(pytester):
    result = pytester.runpytest_inprocess("--hil-scenarios", str(pytester.path),
                                          "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--hil-scenarios needs --dut*"])


def test_a_dut_that_does_not_start_errors_every_test_with_the_reason(pytester):
    pytester.makepyfile(test_x="""
        def test_one(dut):
            pass
        """)
    result = pytester.runpytest_inprocess("--dut", "tcp:127.0.0.1:1", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cannot connect to 127.0.0.1:1*"])
