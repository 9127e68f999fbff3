"""Hypothesis strategies for the protocol layers, importable by users of the
emulator (property tests, fuzzing a DUT from the harness).

One module per layer; `emulator.strategies.axdr` covers A-XDR `Data`.
"""
