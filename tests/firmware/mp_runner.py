"""Run every tests/firmware/test_*.py under MicroPython (or CPython) without pytest.

    MICROPYPATH=.frozen:<repo>:<repo>/tests/firmware micropython tests/firmware/mp_runner.py [test_x ...]

Imports each test module, calls each ``test_*`` function, prints one line per
failure, then ``N passed, M failed``. Exits 1 on any failure, on a module that will
not import, or when no test ran: micropython-lib's unittest exits 0 on failure
(MICROPYTHON.md), which is exactly the trap this runner exists to avoid.
"""

import sys

try:
    import os
except ImportError:  # a minimal port without os: pass module names as arguments
    os = None

try:
    import io
except ImportError:
    io = None


def _here():
    path = globals().get("__file__") or (sys.argv[0] if sys.argv else "")
    cut = path.rfind("/")
    return path[:cut] if cut >= 0 else "."


def _setup_path(here):
    root = here + "/../.."
    for entry in (here, root):
        if entry not in sys.path:
            sys.path.append(entry)


def discover(directory):
    names = []
    for name in os.listdir(directory):
        if name.startswith("test_") and name.endswith(".py"):
            names.append(name[:-3])
    names.sort()
    return names


def _where(error, module_name):
    """' (test_x.py line N)' from the traceback, when the runtime can tell."""
    if io is None:
        return ""
    buf = io.StringIO()
    try:
        if hasattr(sys, "print_exception"):
            sys.print_exception(error, buf)  # MicroPython
        else:
            import traceback
            traceback.print_exception(type(error), error, error.__traceback__, file=buf)
    except Exception:
        return ""
    found = ""
    for line in buf.getvalue().split("\n"):
        if module_name + ".py" in line and "line " in line:
            found = line.strip()
    if not found:
        return ""
    cut = found.find("line ")
    number = found[cut + 5:].split(",")[0]
    return " (%s.py line %s)" % (module_name, number)


def _describe(error):
    text = str(error)
    name = type(error).__name__
    return "%s: %s" % (name, text) if text else name


def run(names):
    passed = 0
    failed = 0
    for module_name in names:
        try:
            module = __import__(module_name)
        except Exception as e:
            failed += 1
            print("FAIL %s (import): %s%s" % (module_name, _describe(e), _where(e, module_name)))
            continue
        test_names = [n for n in dir(module) if n.startswith("test_")]
        test_names.sort()
        for test_name in test_names:
            test = getattr(module, test_name)
            if not callable(test):
                continue
            try:
                test()
            except Exception as e:
                failed += 1
                print("FAIL %s.%s: %s%s" % (module_name, test_name, _describe(e),
                                            _where(e, module_name)))
            else:
                passed += 1
    print("%d passed, %d failed" % (passed, failed))
    return passed, failed


def main(argv):
    here = _here()
    _setup_path(here)
    names = argv[1:] if len(argv) > 1 else discover(here)
    passed, failed = run(names)
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
