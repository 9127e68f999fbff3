"""ECS21a's reader opens both RTDS daily read log responses: single and twin element."""

import pathlib

import pytest

from emulator.crypto import HostCrypto, KeyStore
from emulator.usecases import USE_CASE_BUILDERS, BuildContext
from firmware.gbcs import envelope

VECTORS = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs"
KEYSTORE = KeyStore(VECTORS / "keystore")


@pytest.mark.parametrize("variant", ["SINGLE", "TWIN"])
def test_rtds_daily_read_log_responses_read(variant):
    path = VECTORS / "rtds-4.5.0" / "4.6.1_ECS21a" / f"ECS21a_4.6.1_{variant}_SUCCESS_RESPONSE_GBCS.HEX"
    message = envelope.parse(bytes.fromhex(path.read_text().strip()))
    ctx = BuildContext(counter=message.originator_counter, originator=message.recipient,
                       requester=message.recipient, target=message.originator, crypto=HostCrypto(),
                       ka_private=KEYSTORE.private_key(message.recipient, "ka"),
                       target_ka_public=KEYSTORE.public_key(message.originator, "ka"))
    out = USE_CASE_BUILDERS["ECS21a"].read_response(message.payload, ctx)
    assert out["ok"]
    day = out["days"][0]
    assert len(day["tou"]) == 48 and day["total"] > 0
    if variant == "TWIN":
        assert day["secondary_total"] == 513000 and len(day["secondary_tou"]) == 4
        assert len(day["blocks"]) == 4
    else:
        assert "secondary_total" not in day and len(day["blocks"]) == 4
