"""The ZigBee SE HAN on zigpy and bellows: SE clusters (`clusters`), the comms hub as HAN
coordinator (`hub`), HAN devices (`clients`), radios and bands (`radio`), the lab's
premise on it (`lab`, `rig`). Importing this package imports neither zigpy nor bellows."""

ROLES = ("esme", "gsme", "ihd", "cad", "ppmid")
PROFILES = {                         # `smets-emu han --profile`: which HAN devices run
    "full": ROLES,
    "electricity": ("esme", "ihd", "ppmid", "cad"),
    "gas": ("gsme", "ihd"),
    "display": ("ihd",),
}
