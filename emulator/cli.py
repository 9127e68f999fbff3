"""`smets-emu`: serve an emulated meter, dissect frames, run the demo, build board JSON."""

import asyncio
import datetime
import json
import logging
import pathlib
import signal
import sys
import time

import click
from rich.console import Console
from rich.markup import escape

from emulator import profiles
from emulator.runtime import CoreError, RuntimeFailure, make_runtime
from emulator.transport.clock import SimulatedTime
from emulator.transport.device import ServedDevice
from emulator.transport.tcp import DLMS_PORT, TcpServer

log = logging.getLogger("smets_emu")


class StructuredFormatter(logging.Formatter):
    """One line per event: time, level, logger, then the message's key=value pairs."""

    def format(self, record):
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        line = "%s level=%s logger=%s %s" % (
            stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", record.levelname.lower(),
            record.name, record.getMessage())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(verbose):
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter())
    root = logging.getLogger("smets_emu")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v events, -vv bytes).")
@click.pass_context
def main(ctx, verbose):
    """Emulator of GB SMETS2 smart metering devices."""
    configure_logging(verbose)
    ctx.obj = {"verbose": verbose}


# ---------------------------------------------------------------------------- serve


def parse_host_port(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter("expected HOST:PORT, e.g. 127.0.0.1:%d" % DLMS_PORT)
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_start(text, profile):
    """Simulated start time: the profile's clock.start when not given (so the same
    seed gives the same bytes), `now` for the wall clock, integer seconds since 1970,
    or an ISO-8601 UTC date-time."""
    if text is None:
        start = (profile.get("clock") or {}).get("start")
        return int(start) if start is not None else int(time.time())
    if text == "now":
        return int(time.time())
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("expected seconds since 1970 or ISO-8601, e.g. 2026-01-01T00:00:00Z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp())


def utc_text(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def runtime_options(seed, state, micropython_binary, heapsize):
    return {"seed": seed, "state_dir": state, "binary": micropython_binary, "heapsize": heapsize}


@main.command()
@click.option("--profile", "profile_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              help="Device profile, e.g. profiles/esme-single-phase.toml.")
@click.option("--runtime", "runtime_name", type=click.Choice(["cpython", "micropython"]),
              default="cpython", show_default=True, help="Where the device core runs.")
@click.option("--tcp", "tcp_address", metavar="HOST:PORT",
              help="Serve DLMS over TCP (default 127.0.0.1:%d when nothing else is served)." % DLMS_PORT)
@click.option("--framing", type=click.Choice(["wrapper", "hdlc"]), default="wrapper",
              show_default=True, help="Framing on TCP: IEC 62056-47 wrapper or HDLC.")
@click.option("--pty", "use_pty", is_flag=True, help="Serve HDLC on a new pseudo-terminal.")
@click.option("--serial", "serial_port", metavar="DEV", help="Serve HDLC on a serial port.")
@click.option("--baudrate", type=int, default=9600, show_default=True, help="Serial line speed.")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Simulated time runs this many times wall time.")
@click.option("--seed", type=int, default=0, show_default=True, help="Load model seed.")
@click.option("--state", type=click.Path(file_okay=False, path_type=pathlib.Path),
              help="Directory that keeps the device state across restarts and power cuts.")
@click.option("--start", help="Simulated start time: seconds since 1970, ISO-8601 UTC or 'now'; "
              "default the profile's clock.start.")
@click.option("--tick", type=float, default=1.0, show_default=True,
              help="Wall seconds between clock advances while idle.")
@click.option("--micropython", "micropython_binary", default="micropython", show_default=True,
              help="MicroPython binary for --runtime micropython.")
@click.option("--heapsize", help="MicroPython heap, e.g. 128K (emulates a board's RAM).")
def serve(profile_path, runtime_name, tcp_address, framing, use_pty, serial_port, baudrate,
          speed, seed, state, start, tick, micropython_binary, heapsize):
    """Serve an emulated device over TCP, a pty and/or a serial port until interrupted."""
    if speed <= 0:
        raise click.BadParameter("must be positive", param_hint="--speed")
    tcp = parse_host_port(tcp_address) if tcp_address else None
    if tcp is None and not use_pty and not serial_port:
        tcp = ("127.0.0.1", DLMS_PORT)
    profile = load_profile(profile_path)
    options = runtime_options(seed, state, micropython_binary, heapsize)
    try:
        asyncio.run(_serve(profile, profile_path, runtime_name, options, parse_start(start, profile),
                           speed, tick, tcp, framing, use_pty, serial_port, baudrate))
    except (RuntimeFailure, CoreError, OSError, ConnectionError) as exc:
        raise click.ClickException(str(exc))


async def _serve(profile, profile_path, runtime_name, options, start, speed, tick, tcp, framing,
                 use_pty, serial_port, baudrate):
    runtime = make_runtime(runtime_name, profile, start, **options)
    await runtime.start()
    servers = []
    try:
        device = ServedDevice(runtime, SimulatedTime(start, speed))
        if tcp:
            servers.append(await TcpServer(device, framing, tcp[0], tcp[1]).start())
        if use_pty:
            from emulator.transport.pty import PtyServer
            servers.append(await PtyServer(device).start())
        if serial_port:
            from emulator.transport.serial import SerialServer
            servers.append(await SerialServer(device, serial_port, baudrate).start())
        print_serving(profile, profile_path, runtime, options, speed, servers)
        clock_task = asyncio.ensure_future(device.run_clock(tick))
        await wait_for_stop_signal()
        clock_task.cancel()
        await asyncio.gather(clock_task, return_exceptions=True)
    finally:
        for server in servers:
            await server.close()
        await runtime.stop()
    log.info("event=stopped")


def print_serving(profile, profile_path, runtime, options, speed, servers):
    console = Console(highlight=False, soft_wrap=True)
    name = profile_name(profile, profile_path)
    state = options["state_dir"]
    console.print("[bold]smets-emu[/] serving [bold]%s[/] on the %s runtime: seed %d, speed %gx, "
                  "meter clock %s%s" % (name, runtime.name, options["seed"], speed,
                                        utc_text(runtime.now),
                                        ", state %s%s" % (state, " (restored)" if runtime.restored else "")
                                        if state else ""))
    for server in servers:
        if isinstance(server, TcpServer):
            host, port = server.address
            console.print("listening tcp %s:%d %s" % (host, port, server.framing))
        else:
            kind = "pty" if type(server).__name__ == "PtyServer" else "serial"
            console.print("listening %s %s %s" % (kind, server.path, server.framing))
    console.print("Ctrl-C stops.")
    sys.stdout.flush()


async def wait_for_stop_signal():
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def profile_name(profile, profile_path):
    device = profile.get("device") if isinstance(profile.get("device"), dict) else {}
    return profile.get("name") or device.get("name") or pathlib.Path(profile_path).stem


def load_profile(path):
    try:
        return profiles.load_profile(path)
    except (OSError, ValueError) as exc:
        raise click.ClickException("profile %s: %s" % (path, exc))


# ---------------------------------------------------------------------------- decode


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input, one per line.")
@click.argument("inputs", nargs=-1, required=True, metavar="HEX|FILE...")
def decode(as_json, inputs):
    """Dissect frames: HDLC (7E...), wrapper (00 01...) or a bare APDU/AARQ.

    A FILE holds hex lines (one frame each) or raw bytes. Exit code 0 when every
    frame decodes, 1 when any does not, 2 when an input is neither hex nor a file.
    """
    from emulator.decode import InputError, dissect, read_inputs, render_tree

    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    bad_frames = unreadable = 0
    for argument in inputs:
        try:
            items = read_inputs(argument)
        except (InputError, OSError) as exc:
            unreadable += 1
            if as_json:
                click.echo(json.dumps({"input": argument, "ok": False, "layers": [],
                                       "error": {"layer": "input", "offset": None,
                                                 "reason": str(exc)}}))
            else:
                errors.print("[red]error[/]: %s" % escape(str(exc)))
            continue
        for label, data in items:
            dissection = dissect(data)
            if as_json:
                click.echo(json.dumps(dict({"input": label}, **dissection.to_json())))
            else:
                console.print(render_tree(dissection, label))
            if not dissection.ok:
                bad_frames += 1
                if not as_json:
                    layer, offset, reason = dissection.error
                    errors.print("[red]error[/]: %s: %s layer, offset %d: %s"
                                 % (escape(label), layer, offset, escape(reason)))
    sys.exit(2 if unreadable else 1 if bad_frames else 0)


# ---------------------------------------------------------------------------- profile-json


@main.command("profile-json")
@click.argument("profile_path", metavar="PROFILE",
                type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=pathlib.Path),
              help="Write here instead of stdout.")
def profile_json(profile_path, output):
    """The JSON form of a TOML profile, as a board loads it."""
    text = json.dumps(load_profile(profile_path), indent=1, sort_keys=True) + "\n"
    if output:
        output.write_text(text)
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":
    main()
