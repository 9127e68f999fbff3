"""ARCHITECTURE.md principle 7: the same seed gives the same bytes, so every failure replays.
Key pairs come from the seed, and every ECDSA signature (messages, DUIS documents and SMKI
certificates) takes an RFC 6979 nonce, so two demo runs print the same hops, byte for byte,
and export the same keystore."""

from click.testing import CliRunner

from emulator.cli import main


def _demo(keystore):
    result = CliRunner().invoke(main, ["demo", "--json", "--keystore-out", str(keystore)])
    assert result.exit_code == 0, result.output
    return result.stdout


def _files(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_two_demo_runs_give_the_same_bytes_and_the_same_keystore(tmp_path):
    first, second = _demo(tmp_path / "one"), _demo(tmp_path / "two")
    assert first.count("\n") >= 40
    assert first == second
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert any(name.endswith(".pem") for name in one)
    assert one == two
