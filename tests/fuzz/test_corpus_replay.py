"""Every committed seed and crash input replays through its layer's fuzz target
(`emulator.fuzz.targets`) without a finding: the atheris corpus runs in CI, and a fixed
crash stays fixed. No atheris needed."""

import pathlib

import pytest

from emulator.fuzz import coverage, targets

LAYER_NAMES = sorted(targets.LAYERS)


def _files(root):
    if not root.is_dir():
        return []
    return sorted(path for folder in sorted(root.iterdir()) if folder.is_dir()
                  for path in sorted(folder.iterdir()) if path.is_file())


FILES = _files(coverage.CORPUS_DIR) + _files(coverage.CRASH_DIR)


def replay_file(layer, path):
    """Feed one file to its layer's target; a finding fails with the file's name."""
    try:
        targets.LAYERS[layer].run(pathlib.Path(path).read_bytes())
    except Exception as e:
        pytest.fail("%s replays as a finding of %s: %s: %s"
                    % (path, layer, type(e).__name__, e), pytrace=False)


@pytest.mark.parametrize("path", FILES, ids=lambda p: "%s/%s/%s" % (
    p.parent.parent.name, p.parent.name, p.name[:12]))
def test_file_replays_without_a_finding(path):
    replay_file(path.parent.name, path)


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_every_layer_has_seeds(layer):
    seeds = [p for p in FILES if p.parent == coverage.CORPUS_DIR / layer]
    assert seeds, "no files in %s" % (coverage.CORPUS_DIR / layer)


def test_every_folder_is_a_layer_and_the_corpus_is_small():
    for path in FILES:
        assert path.parent.name in targets.LAYERS, path
    assert sum(p.stat().st_size for p in FILES) < 1_000_000


def test_a_finding_fails_the_replay_with_the_file_name(tmp_path):
    """The replay really can fail: a target's finding fails it, naming the file."""
    path = tmp_path / "crash-example"
    path.write_bytes(bytes.fromhex("7ea0070321930f017e"))       # a good SNRM
    broken = targets.FuzzTarget("broken", "accepts nothing", lambda: (), _always_finding)
    targets.LAYERS["broken"] = broken
    try:
        with pytest.raises(pytest.fail.Exception, match="crash-example"):
            replay_file("broken", path)
    finally:
        del targets.LAYERS["broken"]


def _always_finding(target, data):
    target.expect(False, "%d bytes", len(data))


# ---------------------------------------------------------------- fixed findings

def test_ezsp_request_without_parameters_in_a_tuple_schema_decodes():
    """Fuzzing found it: bellows gives gpTranslationTableClear (v12+) an empty tuple for
    its parameters, and the virtual NCP's decoder raised AttributeError on the request."""
    from emulator.ncp import ezsp
    table = ezsp.CommandTable(12)
    frame = bytes((1, 0x00, 0x01)) + table.id_of("gpTranslationTableClear").to_bytes(2, "little")
    assert table.decode_request(frame)[1:3] == ("gpTranslationTableClear", {})
    assert table.encode(1, "gpTranslationTableClear", {})[3:] == frame[3:]
    with pytest.raises(ezsp.EzspError):
        table.decode_request(frame + b"\x00")


@pytest.mark.parametrize("version", [5, 6, 7, 13])
def test_virtual_ncp_answers_get_child_data_in_its_versions_layout(version):
    """Fuzzing found it: on EZSP v5 and v6 getChildData returns the child's fields one by
    one; the NCP built v7's EmberChildData and raised KeyError."""
    import bellows.types as t
    from emulator.ncp.ncp import VirtualNcp
    ncp = VirtualNcp(bytes(8), None, ezsp_version=version)
    ncp.children = {0x1234: (t.EUI64(bytes(range(8))), t.EmberNodeType(1))}
    for index in (0, 1):
        reply = ncp.table.encode(7, "getChildData", ncp.cmd_getChildData({"index": index}))
        schema = ncp.table.commands["getChildData"][2]
        values, rest = t.deserialize_dict(reply[len(ncp.table.header(7, "getChildData",
                                                                     False)):], schema)
        assert rest == b"" and (int(values["status"]) == 0) == (index == 0)
        child = values.get("childData") or values.get("child_data")
        node = child.id if child is not None else values["childId"]
        assert node == (0x1234 if index == 0 else 0xFFFF)


@pytest.mark.parametrize("version", [7, 8, 12])
def test_virtual_ncp_answers_get_transient_key_table_entry_in_its_versions_layout(version):
    """Fuzzing found it: EZSP v7 answers getTransientKeyTableEntry with keyStruct, an
    EmberTransientKeyDataV5; the NCP built v8's reply and raised KeyError."""
    import bellows.types as t
    from emulator.ncp.ncp import VirtualNcp
    ncp = VirtualNcp(bytes(8), None, ezsp_version=version)
    reply = ncp.table.encode(3, "getTransientKeyTableEntry",
                             ncp.cmd_getTransientKeyTableEntry({"index": 0}))
    schema = ncp.table.commands["getTransientKeyTableEntry"][2]
    head = len(ncp.table.header(3, "getTransientKeyTableEntry", False))
    values, rest = t.deserialize_dict(reply[head:], schema)
    entry = values.get("keyStruct") or values.get("transient_key_data")
    assert rest == b"" and int(values["status"]) != 0 and entry.eui64 == t.EUI64([0] * 8)


def test_zcl_invalid_string_is_the_one_excused_disagreement():
    """Fuzzing found it: a 0xFF-length ZCL string is "invalid" (ZCL r7 2.6.2.10, no
    octets) to the firmware and 255 octets to zigpy. The ZCL target excuses a
    disagreement only where reading 0xFF as zigpy does makes the firmware agree."""
    from emulator.codec import gbz as H
    from firmware.zcl import frame as Z
    head = Z.encode_header(0x08, 1, Z.READ_ATTRIBUTES_RESPONSE)
    invalid = head + bytes.fromhex("05000041ff") + bytes.fromhex("060086")
    assert Z.decode_read_attributes_response(invalid[3:]) == [(5, 0, 0x41, None),
                                                              (6, 0x86, None, None)]
    with pytest.raises(ValueError):
        H.parse_zcl(0x0702, invalid)
    host = (False, None)
    assert targets._zigpy_string_rule_explains(0x0702, invalid, host)
    targets.LAYERS["zcl"].run(b"\x07\x02" + invalid)
    # a 255-octet string zigpy reads, the firmware not: explained by the same rule
    long = head + bytes.fromhex("05000041ff") + bytes(255)
    theirs = (True, targets._host_zcl_reading(0x0702, long))
    assert targets._zigpy_string_rule_explains(0x0702, long, theirs)
    # any other difference is not: a reading that differs in one value
    other = (True, (theirs[1][0], theirs[1][1], [(5, 0, bytes(254) + b"\x01")]))
    assert not targets._zigpy_string_rule_explains(0x0702, long, other)
    valid = head + bytes.fromhex("0500004102abcd")
    assert not targets._zigpy_string_rule_explains(0x0702, valid, (False, None))
    targets.LAYERS["zcl"].run(b"\x07\x02" + valid)


def test_gbz_host_rebuild_is_held_only_where_zigpy_serialises_back():
    """Fuzzing found it: zigpy's CharacterString writes the count of characters as the
    length (and gives undecodable octets back as U+FFFD), so the host's GBZ of a Read
    Attributes response with a non-ASCII string does not rebuild; the GBZ target holds the
    host's rebuild only where zigpy serialises every command back to its bytes."""
    from emulator.codec import gbz as H
    from firmware.zcl import frame as Z
    from firmware.gbcs import gbz as F

    def payload(text):
        frame = Z.encode_header(0x08, 5, Z.READ_ATTRIBUTES_RESPONSE) + \
            Z.encode_read_attributes_response([(0x0300, 0, 0x42, text)])
        return b"\x01\x09\x01\x01\x07\x02" + len(frame).to_bytes(2, "big") + frame

    ascii_, accented = payload(b"m3"), payload("é".encode())
    assert F.decode(accented).encode() == accented
    assert H.encode(H.decode(ascii_)) == ascii_
    assert H.encode(H.decode(accented)) != accented
    assert targets._zigpy_serialises_back(H.decode(ascii_), ascii_)
    assert not targets._zigpy_serialises_back(H.decode(accented), accented)
    for data in (ascii_, accented):
        targets.LAYERS["gbz"].run(data)
