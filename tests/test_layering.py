"""The device core imports only what MicroPython has (ARCHITECTURE.md principle 2).

import-linter (run by `.ci/run`) forbids named host packages; this test is the stricter
allowlist: every import in `firmware/` must be `firmware.*` or a module the MicroPython
unix port and boards provide (measured in shared/design/MICROPYTHON.md).
"""

import ast
import pathlib

FIRMWARE = pathlib.Path(__file__).resolve().parent.parent / "firmware"

MICROPYTHON_MODULES = {
    "struct", "sys", "time", "json", "hashlib", "binascii", "os", "gc", "errno",
    "micropython", "cryptolib", "machine", "select", "io", "asyncio", "uasyncio",
    "network", "socket", "uselect", "uos", "utime", "ustruct", "ubinascii", "ujson",
    "uhashlib", "uerrno",
}
# Modules MicroPython lacks or breaks on (MICROPYTHON.md "Fails or differs").
FORBIDDEN_EVEN_IF_STDLIB = {"dataclasses", "enum", "typing", "__future__", "collections"}


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield node.lineno, "firmware"  # relative import stays inside firmware
            else:
                yield node.lineno, node.module


def test_firmware_imports_only_micropython_modules():
    offenders = []
    files = sorted(FIRMWARE.rglob("*.py"))
    assert files, "no firmware modules found"
    for path in files:
        for lineno, name in _imports(path):
            top = name.split(".")[0]
            if top == "firmware":
                continue
            if top in FORBIDDEN_EVEN_IF_STDLIB or top not in MICROPYTHON_MODULES:
                offenders.append(f"{path.relative_to(FIRMWARE.parent)}:{lineno} imports {name}")
    assert not offenders, "firmware/ must import only MicroPython modules:\n" + "\n".join(offenders)


def test_the_check_catches_a_host_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import construct\nfrom dataclasses import dataclass\nimport struct\n")
    names = [name for _, name in _imports(bad)]
    rejected = [n for n in names if n.split(".")[0] not in MICROPYTHON_MODULES
                or n.split(".")[0] in FORBIDDEN_EVEN_IF_STDLIB]
    assert rejected == ["construct", "dataclasses"]
