"""`smets-emu fuzz`: fuzz a device under test, or the decoders with atheris.

    smets-emu fuzz --target micropython:esme-single-phase --layer hdlc --cases 300 \\
                   --report out/                          # a DUT (emulator/fuzz/dut.py)
    smets-emu fuzz --target serial:/dev/ttyACM0@115200 --layer xdlms --replay out/replay.jsonl
    smets-emu fuzz --layer hdlc --seconds 60               # the decoders, coverage-guided

Exit code 0: no findings; 1: findings (or crash files); 2: a usage error or a DUT
that cannot be fuzzed (not there, not answering before the first case).
"""

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# the fuzzers import hypothesis (the test extra): loaded when `fuzz` runs, so that the
# rest of smets-emu works without it
DUT_LAYERS_TEXT = "hdlc, wrapper, acse, xdlms, axdr, gbcs"


@click.command()
@click.option("--target", metavar="SPEC", help="The DUT: serial:/dev/ttyACM0[@baud], "
              "tcp:HOST:PORT[/wrapper|/hdlc], micropython:PROFILE, inprocess:PROFILE[/wrapper] "
              "(PROFILE: a shipped name or a .toml path). Without it: the decoders, with atheris.")
@click.option("--layer", required=True, metavar="LAYER",
              help="With --target: %s. Without: a decoder layer of emulator.fuzz.targets."
              % DUT_LAYERS_TEXT)
@click.option("--cases", type=click.IntRange(1), default=100, show_default=True,
              help="Generated cases to send to the DUT.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the cases: the same seed sends the same bytes.")
@click.option("--liveness-every", type=click.IntRange(1), default=10, show_default=True,
              help="A liveness probe (GET of the clock) every this many cases.")
@click.option("--timeout", type=click.FloatRange(0.05), default=2.0, show_default=True,
              help="Seconds the DUT has to answer a case or the probe.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write fuzz-report.json and replay.jsonl here.")
@click.option("--profile", metavar="TOML|NAME",
              help="Profile of a serial/tcp DUT (clients, passwords, addresses).")
@click.option("--replay", "replay_file", type=click.Path(dir_okay=False, exists=True),
              help="Send the cases of a replay.jsonl again instead of generated ones.")
@click.option("--micropython", "micropython_binary", default="micropython", show_default=True,
              help="MicroPython binary of a micropython: target.")
@click.option("--power-command", metavar="CMD", help="Command that power-cycles the board "
              "(a hung board is restarted with it and the run goes on).")
@click.option("--power-on", metavar="CMD", help="Command that powers the board on.")
@click.option("--power-off", metavar="CMD", help="Command that powers the board off.")
@click.option("--seconds", type=click.IntRange(1), help="Without --target: seconds of atheris.")
@click.option("--runs", type=click.IntRange(1), help="Without --target: inputs, not seconds.")
@click.option("--corpus", "corpus_dir", type=click.Path(file_okay=False),
              help="Without --target: the corpus folder atheris grows.")
@click.option("--crash-dir", type=click.Path(file_okay=False),
              help="Without --target: where crash files go.")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True,
              help="Without --target: parallel atheris workers.")
@click.pass_context
def fuzz(ctx, target, layer, cases, seed, liveness_every, timeout, report_dir, profile,
         replay_file, micropython_binary, power_command, power_on, power_off, seconds, runs,
         corpus_dir, crash_dir, jobs):
    """Fuzz a device under test (--target) or the decoders (coverage-guided, atheris)."""
    if target is None:
        if replay_file:
            raise click.UsageError("--replay needs --target")
        ctx.exit(_coverage(layer, seconds, runs, corpus_dir, crash_dir, jobs))
    from emulator.fuzz import mutators
    if layer not in mutators.LAYERS:
        raise click.BadParameter("%r is not a DUT layer (%s)" % (layer, ", ".join(mutators.LAYERS)),
                                 param_hint="--layer")
    ctx.exit(_fuzz_dut(target, layer, cases, seed, liveness_every, timeout, report_dir,
                       profile, replay_file, micropython_binary,
                       (power_command, power_on, power_off)))


def _fuzz_dut(spec, layer, count, seed, liveness_every, timeout, report_dir, profile,
              replay_file, micropython_binary, power):
    from emulator.fuzz import report
    from emulator.fuzz.dut import DutFuzzer, FuzzError
    from hil.targets import Dut, Target, TargetError
    console = Console(stderr=True)
    replayed = None
    if replay_file:
        try:
            replayed = report.read_replay(replay_file)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--replay")
    try:
        target = Target(spec, profile=profile, seed=seed, micropython=micropython_binary,
                        power_command=power[0], power_on=power[1], power_off=power[2])
    except (TargetError, ValueError, OSError) as exc:
        raise click.BadParameter(str(exc), param_hint="--target")
    try:
        try:
            target.start()
            fuzzer = DutFuzzer(Dut(target), layer, seed=seed, liveness_every=liveness_every,
                               timeout=timeout)
        except Exception as exc:
            raise click.UsageError("cannot fuzz %s: %s" % (spec, exc))
        total = len(replayed) if replayed is not None else count
        with Progress(TextColumn("[bold]%s[/] %s" % (layer, "replay" if replayed else "fuzz")),
                      BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("{task.fields[findings]} findings"), console=console,
                      transient=True) as progress:
            task = progress.add_task("cases", total=total, findings=0)

            def advance(index):
                progress.update(task, completed=index + 1,
                                findings=len(fuzzer.result.findings))
            try:
                if replayed is not None:
                    result = fuzzer.replay(replayed, on_case=advance)
                else:
                    result = fuzzer.run(count, on_case=advance)
            except FuzzError as exc:
                raise click.UsageError(str(exc))
    finally:
        target.stop()
    console.print(report.summary_table(result))
    if report_dir:
        paths = report.write(result, report_dir)
        console.print("report: %s, replay: %s" % paths)
    return 1 if result.findings else 0


def _coverage(layer, seconds, runs, corpus_dir, crash_dir, jobs):
    from emulator.fuzz import coverage, targets
    if layer not in targets.LAYERS:
        raise click.BadParameter("%r is not a decoder layer (%s)" % (
            layer, ", ".join(sorted(targets.LAYERS))), param_hint="--layer")
    if seconds is None and runs is None:
        raise click.UsageError("without --target give --seconds N (or --runs N)")
    ok, why = coverage.available()
    if not ok:
        raise click.UsageError(why)
    result = coverage.run(layer, seconds or 0, corpus_dir=corpus_dir, crash_dir=crash_dir,
                          runs=runs, jobs=jobs)
    click.echo(repr(result))
    for crash in result.crashes:
        click.echo("crash: %s" % crash)
    return 0 if result.ok else 1
