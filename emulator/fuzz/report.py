"""The report of a DUT fuzz run: `fuzz-report.json`, `replay.jsonl` and the summary table.

fuzz-report.json (schema 1):

    {"schema": 1, "target": "micropython:esme-single-phase", "layer": "hdlc", "seed": 0,
     "cases": 300, "duration_s": 7.3, "liveness_every": 10, "timeout_s": 2.0,
     "probes": 31, "recoveries": 0, "stopped": null,
     "findings": [{"kind": "hang", "case": 7, "detail": "...",
                   "frames": ["7ea0...", ...],          # the cases since the last good probe
                   "reproducer": [{"layer", "action", "hex", "expect", "kind"}, ...],
                   "reproduced": true}]}

replay.jsonl: the reproducers' cases, one JSON object a line (`mutators.Case.to_json`
plus the number of the finding), for `smets-emu fuzz --target ... --replay FILE`.
"""

import json
import pathlib

from rich.table import Table

from emulator.fuzz.mutators import Case

SCHEMA = 1
REPORT_NAME = "fuzz-report.json"
REPLAY_NAME = "replay.jsonl"


def report_json(result):
    return {"schema": SCHEMA, "target": result.target, "layer": result.layer,
            "seed": result.seed, "cases": result.cases,
            "duration_s": round(result.duration, 3), "liveness_every": result.liveness_every,
            "timeout_s": result.timeout, "probes": result.probes,
            "recoveries": result.recoveries, "stopped": result.stopped,
            "findings": [f.to_json() for f in result.findings]}


def replay_lines(result):
    lines = []
    for number, finding in enumerate(result.findings):
        for case in finding.reproducer:
            item = case.to_json()
            item["finding"] = number
            lines.append(json.dumps(item, sort_keys=True))
    return lines


def write(result, folder):
    """fuzz-report.json and replay.jsonl in `folder`; the two paths."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / REPORT_NAME
    replay = folder / REPLAY_NAME
    report.write_text(json.dumps(report_json(result), indent=2, sort_keys=True) + "\n")
    lines = replay_lines(result)
    replay.write_text("".join(line + "\n" for line in lines))
    return report, replay


def read_replay(path):
    """The cases of a replay file, in order."""
    cases = []
    for number, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            cases.append(Case.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError("%s line %d: not a replay case (%s)" % (path, number, exc))
    return cases


def summary_table(result):
    """A rich table of the run and its findings."""
    table = Table(title="fuzz %s: layer %s, seed %d" % (result.target, result.layer, result.seed))
    table.add_column("#", justify="right")
    table.add_column("kind")
    table.add_column("after case", justify="right")
    table.add_column("reproducer")
    table.add_column("reproduced")
    table.add_column("detail")
    for number, finding in enumerate(result.findings):
        frames = " ".join(c.data.hex() for c in finding.reproducer)
        table.add_row(str(number), finding.kind, str(finding.index),
                      frames[:60] + ("..." if len(frames) > 60 else ""),
                      {True: "yes", False: "no", None: "-"}[finding.reproduced],
                      finding.detail[:60])
    table.caption = "%d cases in %.1f s, %d probes, %d restarts, %d findings%s" % (
        result.cases, result.duration, result.probes, result.recoveries,
        len(result.findings), "; stopped: %s" % result.stopped if result.stopped else "")
    return table
