"""The campaign summary: scenario × DUT -> result and latency, as Markdown and HTML.

Each run adds its DUT's column to `campaign.json` in the report folder, so running the
suite against `inprocess`, then `micropython`, then a board fills one matrix:

    record = CampaignRecord(folder)
    record.add(dut, test, outcome, duration_ms, steps=[StepResult.to_json()...], reason)
    record.write()        # campaign.json, summary.md, summary.html
"""

import datetime
import html
import json
import pathlib

SYMBOLS = {"passed": "pass", "failed": "FAIL", "skipped": "skip", "error": "ERROR"}


class CampaignRecord:
    def __init__(self, folder):
        self.folder = pathlib.Path(folder)
        self.path = self.folder / "campaign.json"
        self.data = {"duts": {}}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError:
                pass                  # a broken file from an interrupted run: start again
        self._fresh = set()

    def add(self, dut, test, outcome, duration_ms=None, steps=(), reason=""):
        """One test's result on one DUT; the first add for a DUT in this run replaces
        that DUT's column from earlier runs."""
        if dut not in self._fresh:
            self.data["duts"][dut] = {"when": _now(), "tests": {}}
            self._fresh.add(dut)
        self.data["duts"][dut]["tests"][test] = {
            "outcome": outcome, "duration_ms": None if duration_ms is None else round(duration_ms, 3),
            "steps": list(steps), "reason": reason}

    def matrix(self):
        """(tests, duts, cells) with cells[(test, dut)] the test's record."""
        duts = sorted(self.data["duts"])
        tests = sorted({t for d in duts for t in self.data["duts"][d]["tests"]})
        cells = {(t, d): self.data["duts"][d]["tests"].get(t) for t in tests for d in duts}
        return tests, duts, cells

    def write(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, sort_keys=True))
        (self.folder / "summary.md").write_text(self.markdown())
        (self.folder / "summary.html").write_text(self.html())
        return self.folder

    # -- rendering ---------------------------------------------------------------------------
    def markdown(self):
        tests, duts, cells = self.matrix()
        lines = ["# HIL campaign summary", "",
                 "Result and latency of each scenario on each DUT.", "",
                 "| scenario | " + " | ".join(duts) + " |",
                 "|---" * (len(duts) + 1) + "|"]
        for test in tests:
            lines.append("| %s | %s |" % (_md(test), " | ".join(
                _md(_cell_text(cells[(test, d)])) for d in duts)))
        lines += ["", _totals_line(tests, duts, cells), ""]
        for dut in duts:
            lines += ["## %s" % _md(dut), "", "Run %s." % self.data["duts"][dut]["when"], ""]
            for test in tests:
                record = cells[(test, dut)]
                if not record or not record["steps"]:
                    continue
                lines += ["### %s" % _md(test), "",
                          "| # | step | latency ms | budget ms | status |",
                          "|---|---|---|---|---|"]
                for step in record["steps"]:
                    lines.append("| %s | %s | %s | %s | %s |" % (
                        step["step"], _md(step["name"]), _ms(step["latency_ms"]),
                        step["budget_ms"], _md(step["status"])))
                lines.append("")
        return "\n".join(lines) + "\n"

    def html(self):
        tests, duts, cells = self.matrix()
        out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
               "<title>HIL campaign summary</title>",
               "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
               "td,th{border:1px solid #999;padding:3px 8px}.passed{background:#d4f7d4}"
               ".failed,.error{background:#f7d4d4}.skipped{background:#eee}</style>",
               "</head><body>", "<h1>HIL campaign summary</h1>",
               "<table><tr><th>scenario</th>%s</tr>" % "".join(
                   "<th>%s</th>" % html.escape(d) for d in duts)]
        for test in tests:
            row = ["<td>%s</td>" % html.escape(test)]
            for dut in duts:
                record = cells[(test, dut)]
                css = record["outcome"] if record else "missing"
                title = html.escape(record.get("reason") or "") if record else ""
                row.append("<td class='%s' title='%s'>%s</td>" % (
                    css, title, html.escape(_cell_text(record))))
            out.append("<tr>%s</tr>" % "".join(row))
        out.append("</table><p>%s</p>" % html.escape(_totals_line(tests, duts, cells)))
        for dut in duts:
            out.append("<h2>%s</h2>" % html.escape(dut))
            for test in tests:
                record = cells[(test, dut)]
                if not record or not record["steps"]:
                    continue
                out.append("<h3>%s</h3><table><tr><th>#</th><th>step</th><th>latency ms</th>"
                           "<th>budget ms</th><th>status</th></tr>" % html.escape(test))
                for step in record["steps"]:
                    out.append("<tr class='%s'><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                               "<td>%s</td></tr>" % (
                                   "passed" if step["status"] == "passed" else "failed",
                                   step["step"], html.escape(step["name"]),
                                   _ms(step["latency_ms"]), step["budget_ms"],
                                   html.escape(step["status"])))
                out.append("</table>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"


def _cell_text(record):
    if not record:
        return "-"
    text = SYMBOLS.get(record["outcome"], record["outcome"])
    if record["duration_ms"] is not None and record["outcome"] != "skipped":
        text += " %s ms" % _ms(record["duration_ms"])
    return text


def _totals_line(tests, duts, cells):
    parts = []
    for dut in duts:
        outcomes = [cells[(t, dut)]["outcome"] for t in tests if cells[(t, dut)]]
        parts.append("%s: %d passed, %d failed, %d skipped" % (
            dut, outcomes.count("passed"), outcomes.count("failed") + outcomes.count("error"),
            outcomes.count("skipped")))
    return "; ".join(parts)


def _ms(value):
    return "-" if value is None else "%.1f" % value


def _md(text):
    return str(text).replace("|", "\\|")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
