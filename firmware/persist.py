"""Where a device keeps its state across a restart or a power cut.

`StateStore` is the interface the device core needs: `load() -> dict or None` (None when
nothing was ever saved) and `save(dict)`. A saved state is a JSON-safe dict (what
`Esme.save_state()` returns, wrapped by the board).

`FileStateStore(directory)` keeps it in `<directory>/state.json`, written so that a
power cut at any instant leaves either the old or the new state, never a mix:
write `state.json.tmp`, flush and fsync it, then rename it over `state.json` (rename is
atomic on POSIX and on littlefs). Where rename cannot replace an existing file (FAT on
some boards), the old file is removed first; `load()` then also accepts a complete
`state.json.tmp`, so the window between remove and rename loses nothing either.

Runs on CPython and MicroPython (`os.rename`, `os.remove`, `os.stat`, `os.mkdir` exist on
both; `os.fsync` only on CPython, so MicroPython relies on `flush` and the close).
"""

import binascii
import json
import os

STATE_FILE = "state.json"


def hex_text(data):
    """Bytes as a saved state holds them: lower-case hex text (JSON has no bytes)."""
    return binascii.hexlify(bytes(data)).decode()


def from_hex(text):
    """`hex_text` read back; ValueError (binascii.Error) when it is not hex."""
    return binascii.unhexlify(text)


class StateError(Exception):
    """The stored state exists but cannot be read back (not the device's JSON)."""


class StateStore:
    """Interface: a place for one JSON-safe dict."""

    def load(self):
        raise NotImplementedError

    def save(self, state):
        raise NotImplementedError


class MemoryStateStore(StateStore):
    """Keeps the state as JSON text in memory: proves a state is JSON-safe in tests."""

    def __init__(self):
        self.text = None
        self.saves = 0

    def load(self):
        if self.text is None:
            return None
        return json.loads(self.text)

    def save(self, state):
        _check_state(state)
        self.text = json.dumps(state)
        self.saves += 1


class FileStateStore(StateStore):
    def __init__(self, directory, name=STATE_FILE):
        self.directory = directory
        self.path = _join(directory, name)
        self.temp_path = self.path + ".tmp"

    def load(self):
        text = _read(self.path)
        if text is not None:
            return _parse(text, self.path)
        # only reachable if a save was cut between removing the old file and the rename
        text = _read(self.temp_path)
        if text is None:
            return None
        try:
            return _parse(text, self.temp_path)
        except StateError:
            return None   # the cut came while writing the temp file: nothing was saved

    def save(self, state):
        _check_state(state)
        text = json.dumps(state)
        _ensure_directory(self.directory)
        _write_synced(self.temp_path, text)
        try:
            os.rename(self.temp_path, self.path)
        except OSError:
            _remove(self.path)      # filesystems whose rename will not replace a file
            os.rename(self.temp_path, self.path)
        _sync_directory(self.directory)


def _check_state(state):
    if not isinstance(state, dict):
        raise TypeError("a device state is a dict")


def _join(directory, name):
    if directory.endswith("/"):
        return directory + name
    return directory + "/" + name


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _ensure_directory(directory):
    if not _exists(directory):
        os.mkdir(directory)


def _read(path):
    try:
        with open(path, "r") as f:
            return f.read()
    except OSError:
        return None


def _parse(text, path):
    try:
        state = json.loads(text)
    except ValueError:
        raise StateError("%s is not valid JSON" % path)
    if not isinstance(state, dict):
        raise StateError("%s does not hold a JSON object" % path)
    return state


def _write_synced(path, text):
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        fsync = getattr(os, "fsync", None)
        if fsync is not None:
            fsync(f.fileno())


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _sync_directory(directory):
    """Make the rename itself durable where the OS allows opening a directory."""
    opener = getattr(os, "open", None)
    fsync = getattr(os, "fsync", None)
    flag = getattr(os, "O_RDONLY", None)
    if opener is None or fsync is None or flag is None:
        return
    try:
        fd = opener(directory, flag)
    except OSError:
        return
    try:
        fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
