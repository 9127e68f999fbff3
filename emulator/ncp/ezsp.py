"""EZSP frames from the NCP's side, decoded and encoded with bellows' own tables.

The command ids, parameter lists and types of every EZSP version are bellows'
(``bellows/ezsp/v*/commands.py`` and ``bellows.types``), so the virtual NCP cannot
drift from what the host expects; nothing here restates a parameter list.

Frame headers (UG100 "EZSP Reference Guide" §3):
- legacy (the first ``version`` command, and EZSP v4): ``seq, frameControl, frameId``;
- v5-v7: ``seq, frameControl, 0xFF, 0x00, frameId`` (extended header, 8-bit id);
- v8+: ``seq, frameControl_lo, frameControl_hi (0x01), frameId (16-bit LE)``.
frameControl_lo of a reply has bit 7 set (direction: response); callbacks sent on
their own (asynchronous callbacks on ASH) also set callbackType = 0b10 (0x10).

Field names change between versions (``apsFrame`` in v8, ``aps_frame`` in v14), so a
handler speaks in canonical snake-case names (``canonical``) and the codec maps them
onto whatever the version's table calls them.
"""

from __future__ import annotations

import re

import bellows.types as t
from bellows.ezsp import EZSP

FC_RESPONSE = 0x80
FC_ASYNC_CALLBACK = 0x10
FC_HI_V8 = 0x01

SUPPORTED_VERSIONS = tuple(sorted(v for v in EZSP._BY_VERSION if v >= 5))


class EzspError(Exception):
    """A request the NCP cannot decode: ``offset`` into the EZSP frame, ``reason``."""

    def __init__(self, offset: int, reason: str, status: int = 0x31):
        super().__init__(f"EZSP error at offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason
        self.status = status     # EzspStatus for invalidCommand (0x31 INVALID_FRAME_ID)


# Names bellows uses for the same field across versions -> one canonical name.
_SYNONYMS = {
    "type": "message_type",
    "index_or_destination": "nwk",
    "sender": "nwk",
    "message_contents": "message",
    "last_hop_lqi": "lqi",
    "last_hop_rssi": "rssi",
    "child_data": "child_data",
}


def canonical(name: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    return _SYNONYMS.get(snake, snake)


class CommandTable:
    """One EZSP version's commands, from bellows."""

    def __init__(self, version: int):
        if version not in EZSP._BY_VERSION:
            raise ValueError(f"bellows knows no EZSP version {version}")
        self.version = version
        self.commands = EZSP._BY_VERSION[version].COMMANDS
        self.by_id = {cmd_id: name for name, (cmd_id, _tx, _rx) in self.commands.items()}

    def id_of(self, name: str) -> int:
        return self.commands[name][0]

    def has(self, name: str) -> bool:
        return name in self.commands

    def header(self, seq: int, name: str, legacy: bool, callback: bool = False) -> bytes:
        frame_id = self.id_of(name)
        fc = FC_RESPONSE | (FC_ASYNC_CALLBACK if callback else 0)
        if legacy or self.version < 5:
            return bytes((seq & 0xFF, fc, frame_id))
        if self.version < 8:
            return bytes((seq & 0xFF, fc, 0xFF, 0x00, frame_id))
        return bytes((seq & 0xFF, fc, FC_HI_V8)) + frame_id.to_bytes(2, "little")

    def decode_request(self, frame: bytes):
        """-> (seq, name, {canonical: value}, legacy, raw_args)"""
        seq, frame_id, offset, legacy = split_header(frame, self.version)
        name = self.by_id.get(frame_id)
        if name is None:
            raise EzspError(offset - 1, f"no command 0x{frame_id:04X} in EZSP v{self.version}")
        schema = parameter_schema(self.commands[name][1])
        try:
            if isinstance(schema, dict):
                values, rest = t.deserialize_dict(frame[offset:], schema)
            else:
                struct, rest = schema.deserialize(frame[offset:])
                values = struct.as_dict()
        except (ValueError, KeyError, IndexError) as exc:
            raise EzspError(offset, f"{name} parameters: {exc}", status=0x33) from None
        if rest:
            raise EzspError(len(frame) - len(rest), f"{len(rest)} trailing bytes after {name}",
                            status=0x33)
        return seq, name, {canonical(k): v for k, v in values.items()}, legacy

    def encode(self, seq: int, name: str, values: dict, legacy: bool = False,
               callback: bool = False) -> bytes:
        """A reply (or callback) ``name`` with its fields taken from ``values``.

        Integer fields the handler leaves out are 0 (binding index, timestamp...);
        any other missing field is a bug in the handler and raises KeyError.
        """
        schema = parameter_schema(self.commands[name][2])
        fields = schema.fields if not isinstance(schema, dict) else None
        if fields is not None:
            data = schema(**{f.name: values.get(canonical(f.name)) for f in fields}).serialize()
        else:
            parts = []
            for key, type_ in schema.items():
                ckey = canonical(key)
                if ckey in values:
                    value = values[ckey]
                elif issubclass(type_, int):
                    value = 0
                else:
                    raise KeyError(f"{name} needs {key} ({type_.__name__})")
                parts.append(type_(value).serialize())
            data = b"".join(parts)
        return self.header(seq, name, legacy, callback) + data


def parameter_schema(schema):
    """bellows' parameter list of a command: a dict of name -> type or a Struct class;
    a few commands (gpTranslationTableClear from v12) have an empty tuple instead."""
    if isinstance(schema, (tuple, list)):
        return {f"arg{i}": type_ for i, type_ in enumerate(schema)}
    return schema


def split_header(frame: bytes, version: int):
    """-> (seq, frame_id, offset of the parameters, legacy)"""
    if len(frame) < 3:
        raise EzspError(len(frame), "EZSP frame shorter than its header")
    seq, fc = frame[0], frame[1]
    if fc & FC_RESPONSE:
        raise EzspError(1, "frame control says NCP-to-host", status=0x32)
    if frame[2] == 0x00 and len(frame) == 4:
        return seq, 0x00, 3, True              # legacy version command (UG100 §3.1)
    if version >= 8:
        if len(frame) < 5 or frame[2] != FC_HI_V8:
            raise EzspError(2, "v8+ frame control high byte must be 0x01")
        return seq, int.from_bytes(frame[3:5], "little"), 5, False
    if version >= 5:
        if len(frame) < 5 or frame[2] != 0xFF:
            raise EzspError(2, "extended header expected (0xFF)")
        return seq, frame[4], 5, False
    return seq, frame[2], 3, True


