"""`smets-emu`: serve an emulated meter, dissect frames, run the demo, build board JSON."""

import asyncio
import contextlib
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
@click.option("--profile", "profile_path", required=True, metavar="TOML|NAME",
              help="Device profile: profiles/esme-single-phase.toml or its name.")
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
@click.option("--heapsize", help="MicroPython heap, e.g. 640K (emulates a board's RAM).")
@click.option("-v", "--verbose", count=True, help="More log output (-v events, -vv bytes).")
@click.pass_context
def serve(ctx, profile_path, runtime_name, tcp_address, framing, use_pty, serial_port, baudrate,
          speed, seed, state, start, tick, micropython_binary, heapsize, verbose):
    """Serve an emulated device over TCP, a pty and/or a serial port until interrupted."""
    configure_logging(max(verbose, ctx.obj["verbose"]))
    if speed <= 0:
        raise click.BadParameter("must be positive", param_hint="--speed")
    tcp = parse_host_port(tcp_address) if tcp_address else None
    if tcp is None and not use_pty and not serial_port:
        tcp = ("127.0.0.1", DLMS_PORT)
    profile = load_profile(profile_path)
    if state is not None:
        state.mkdir(parents=True, exist_ok=True)   # a first write must not fail mid-SET
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
        stop_task = asyncio.ensure_future(wait_for_stop_signal())
        death_task = asyncio.ensure_future(runtime.wait_exit())
        await asyncio.wait([stop_task, death_task, clock_task],
                           return_when=asyncio.FIRST_COMPLETED)
        for task in (clock_task, stop_task, death_task):
            task.cancel()
        await asyncio.gather(clock_task, stop_task, death_task, return_exceptions=True)
        if clock_task.done() and not clock_task.cancelled() and clock_task.exception():
            raise clock_task.exception()
        if death_task.done() and not death_task.cancelled():
            raise death_task.result()
        await device.tick()            # the state saved on the way out is of this moment
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
        console.print("listening %s" % server.describe())
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


def load_profile(name_or_path):
    """The JSON-form profile of a TOML path or a shipped profile's name."""
    path = profiles.profile_path(name_or_path)
    if not path.is_file():
        raise click.ClickException("no profile %s (shipped: %s)"
                                   % (name_or_path, ", ".join(profiles.profile_names())))
    try:
        return profiles.load_profile(path)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc))


# ---------------------------------------------------------------------------- decode


def parse_eui(text):
    cleaned = text.replace("-", "").replace(":", "")
    if len(cleaned) != 16:
        raise click.BadParameter("an EUI-64 is 16 hex digits, e.g. 90B3D51F30000002")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise click.BadParameter("an EUI-64 is 16 hex digits, e.g. 90B3D51F30000002")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input, one per line.")
@click.option("--keystore", type=click.Path(file_okay=False, exists=True, path_type=pathlib.Path),
              help="SMKI keystore folder (RTDS layout, or `demo --keystore-out`): check "
                   "GBCS MACs and signatures.")
@click.option("--acb", "acb_text", default="90B3D51F30000002", show_default=True,
              help="EUI-64 of the Access Control Broker whose KA key MACs commands.")
@click.argument("inputs", nargs=-1, required=True, metavar="HEX|FILE...")
def decode(as_json, keystore, acb_text, inputs):
    """Dissect frames: HDLC (7E...), wrapper (00 01...), GBCS (DD 00 00... or DF 09...)
    or a bare APDU/AARQ.

    A FILE holds hex lines (one frame each) or raw bytes. GBCS messages show the
    envelope, the message code, the payload (DLMS ACCESS, GBZ or ASN.1) and, with
    --keystore, whether MAC and signature verify. Exit code 0 when every frame decodes
    (and nothing checked fails to verify), 1 when any does not, 2 when an input is
    neither hex nor a file.
    """
    from emulator.crypto import KeyStore
    from emulator.decode import InputError, dissect, read_inputs, render_tree

    acb = parse_eui(acb_text)
    store = KeyStore(keystore) if keystore is not None else None
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
            dissection = dissect(data, store, acb)
            if as_json:
                click.echo(json.dumps(dict({"input": label}, **dissection.to_json())))
            else:
                console.print(render_tree(dissection, label))
            if not dissection.ok:
                bad_frames += 1
                if not as_json and dissection.error:
                    layer, offset, reason = dissection.error
                    errors.print("[red]error[/]: %s: %s layer, offset %d: %s"
                                 % (escape(label), layer, offset, escape(reason)))
                for check in dissection.checks:
                    if not as_json and check["result"] == "failed":
                        errors.print("[red]error[/]: %s: %s does not verify (%s)"
                                     % (escape(label), check["check"], escape(check["detail"])))
    sys.exit(2 if unreadable else 1 if bad_frames else 0)


# ---------------------------------------------------------------------------- demo

DEMO_HISTORY = 2 * 86400 + 600    # simulated seconds run before the read: two days of HH
HH_ENTRIES = 48
UNITS = {27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh", 33: "A", 35: "V",
         44: "Hz"}                # Blue Book 4.3.2 unit enumeration, the ones a meter shows


class DemoFailure(Exception):
    pass


@main.command()
@click.option("--dlms-only", is_flag=True,
              help="The DLMS-only demo: serve an ESME on TCP and read it with the host client.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per message hop (with its hex), one per line.")
@click.option("--keystore-out", type=click.Path(file_okay=False, path_type=pathlib.Path),
              help="Export the lab's test PKI here (for `decode --keystore`).")
@click.option("--region", type=click.Choice(["north", "central", "south"]), default="south",
              show_default=True, help="CSP region of the premise: the WAN's latency and loss.")
@click.option("--loss", type=float, default=0.0, show_default=True,
              help="WAN frame loss (replaces the region's; retransmission hides it).")
@click.option("--profile", "profile_name_or_path", default="esme-single-phase", show_default=True,
              help="--dlms-only: a shipped profile name or a TOML path.")
@click.option("--runtime", "runtime_name", type=click.Choice(["cpython", "micropython"]),
              default="cpython", show_default=True, help="--dlms-only: the device runtime.")
@click.option("--framing", type=click.Choice(["wrapper", "hdlc"]), default="wrapper",
              show_default=True, help="--dlms-only: the link framing.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--micropython", "micropython_binary", default="micropython", show_default=True)
@click.option("--heapsize", help="MicroPython heap, e.g. 512K.")
@click.option("--pcap", "pcap_path", type=click.Path(dir_okay=False, path_type=pathlib.Path),
              help="Write the HAN's GB-HRGP tunnel frames here as IEEE 802.15.4 (link type "
              "195): the in-process HAN's TransferData commands encapsulated in MAC/NWK/APS/"
              "ZCL Tunneling as a GB device sends them (APS-fragmented past one PSDU). The "
              "frames bellows really exchanges: `smets-emu han --radio virtual --pcap`.")
def demo(dlms_only, as_json, keystore_out, region, loss, profile_name_or_path, runtime_name,
         framing, seed, micropython_binary, heapsize, pcap_path):
    """Run the GBCS lab in one process: head-end -> DCC -> WAN -> hub -> HAN -> ESME/GSME.

    Commission, read registers and the HH profile, top up, disable and enable supply,
    read gas through the GPF while the GSME sleeps, change supplier and see the old one
    refused; every hop's verification is shown. Exit code 1 when any check fails.
    """
    if dlms_only and pcap_path is not None:
        raise click.BadParameter("the DLMS-only demo has no HAN", param_hint="--pcap")
    if dlms_only:
        _dlms_demo(profile_name_or_path, runtime_name, framing, seed, micropython_binary,
                   heapsize)
        return
    from emulator.lab import Lab, demo_sequence

    if not 0.0 <= loss < 1.0:
        raise click.BadParameter("a probability below 1", param_hint="--loss")

    async def run():
        async with Lab(seed=seed, region=region, loss=loss) as lab:
            if keystore_out is not None:
                lab.export_keystore(keystore_out)
            return lab, await demo_sequence(lab)

    lab, steps = asyncio.run(run())
    if pcap_path is not None:
        from emulator.lab import HUB_EUI
        from emulator.pcap import write_tunnel_pcap
        write_tunnel_pcap(pcap_path, lab.han.log, HUB_EUI)
    if as_json:
        for hop in lab.hops:
            click.echo(json.dumps(hop.to_json()))
    else:
        print_demo(Console(highlight=False), lab, steps, keystore_out)
    failed = [step for step in steps if not step.ok]
    if failed:
        errors = Console(stderr=True, highlight=False, soft_wrap=True)
        for step in failed:
            errors.print("[red]failed[/]: %s" % escape(step.title))
        sys.exit(1)


CHECK_STYLE = {"verified": "green", "failed": "bold red", "absent": "dim", "sent": "dim",
               "not checked": "yellow", "I0": "green"}


def print_demo(console, lab, steps, keystore_out):
    from rich.table import Table

    console.print("[bold]smets-emu GBCS lab[/]: seed %d; WAN over TCP on 127.0.0.1 with the %s "
                  "region's latency x%g and loss %g; premise: ESME %s, GSME %s (asleep), hub %s "
                  "with GPF" % (lab.seed, lab.region, lab.time_scale, lab.loss,
                                lab.esme_security.own_eui.hex().upper(),
                                lab.gsme_security.own_eui.hex().upper(), lab.hub.eui.hex().upper()))
    for number, step in enumerate(steps, 1):
        console.rule("[bold]%d. %s" % (number, escape(step.title)))
        if step.skipped:
            console.print("[yellow]not run[/]: %s" % escape(step.skipped))
            continue
        hops = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for column in ("hop", "layer", "bytes", "verified"):
            hops.add_column(column, justify="right" if column == "bytes" else "left")
        for hop in step.outcome.hops:
            text = _check_text(hop.checks)
            if hop.note:
                text += "%s[dim]%s[/]" % (", " if text else "", escape(hop.note))
            hops.add_row(escape(hop.name), hop.layer, str(len(hop.data)), text)
        console.print(hops)
        for what, passed, detail in step.expectations:
            console.print("  %s %s%s" % ("[green]✓[/]" if passed else "[bold red]✗[/]",
                                          escape(what), " [dim](%s)[/]" % escape(str(detail))
                                          if detail else ""))
        for label, value in step.values:
            console.print("  [cyan]%s[/]: %s" % (escape(label), escape(str(value))))
    passed = sum(1 for s in steps if s.ok and not s.skipped)
    skipped = sum(1 for s in steps if s.skipped)
    failed = sum(1 for s in steps if not s.ok)
    console.rule()
    console.print("%d steps passed, %d failed, %d not run; %d hops recorded"
                  % (passed, failed, skipped, len(lab.hops)))
    if keystore_out is not None:
        console.print("test PKI exported to %s: smets-emu decode --keystore %s HEX..."
                      % (keystore_out, keystore_out))


def _check_text(checks):
    words = []
    for check in checks:
        if check["check"] == "duis request":
            continue
        style = CHECK_STYLE.get(check["result"], "yellow" if check["result"].startswith("E")
                                else "white")
        words.append("%s [%s]%s[/]" % (escape(check["check"]), style, escape(check["result"])))
    return ", ".join(words)


def _dlms_demo(profile_name_or_path, runtime_name, framing, seed, micropython_binary, heapsize):
    """Serve an ESME on a loopback TCP port and read it back with the host client."""
    profile = load_profile(profile_name_or_path)
    console = Console(highlight=False)
    options = runtime_options(seed, None, micropython_binary, heapsize)
    try:
        reading = asyncio.run(_demo(profile, runtime_name, framing, options, console))
    except (DemoFailure, RuntimeFailure, CoreError, OSError, ConnectionError) as exc:
        raise click.ClickException("demo failed: %s" % exc)
    except Exception as exc:   # the client's refusals and link failures: say what failed
        raise click.ClickException("demo failed: %s: %s" % (type(exc).__name__, exc))
    print_reading(console, reading)


async def _demo(profile, runtime_name, framing, options, console):
    start = int((profile.get("clock") or {}).get("start") or time.time())
    runtime = make_runtime(runtime_name, profile, start, **options)
    await runtime.start()
    server = None
    try:
        now = await runtime.advance(start + DEMO_HISTORY)
        device = ServedDevice(runtime, SimulatedTime(now, 1))
        server = await TcpServer(device, framing, "127.0.0.1", 0).start()
        host, port = server.address
        console.print("[bold]%s[/] on the %s runtime, %s framing on tcp %s:%d; meter clock %s"
                      % (profile_name(profile, "esme"), runtime.name, framing, host, port,
                         utc_text(now)))
        return await asyncio.to_thread(read_meter, profile, framing, host, port, now)
    finally:
        if server is not None:
            await server.close()
        await runtime.stop()


@contextlib.contextmanager
def dlms_client(profile, framing, host, port, client="public"):
    """An associated `DlmsClient` for one of the profile's clients, over TCP with the
    given framing; released and closed on exit."""
    from emulator.client import DlmsClient
    from emulator.link import HdlcPrimary, LinkConnection, WrapperClient
    from emulator.transport.streams import SocketStream

    config = profile["clients"][client]
    sap = config["sap"]
    if framing == "hdlc":
        address = profile.get("hdlc") or {}
        link = HdlcPrimary(client_address=sap, server_upper=address.get("server_upper", 1),
                           server_lower=address.get("server_lower", 0x10))
    else:
        link = WrapperClient(client_wport=sap,
                             server_wport=(profile.get("wrapper") or {}).get("wport", 1))
    with SocketStream(host, port) as stream, LinkConnection(link, stream) as connection:
        session = DlmsClient(connection)
        password = config.get("password")
        session.associate(client_sap=sap, password=password.encode() if password else None)
        yield session
        session.release()


def read_meter(profile, framing, host, port, now):
    """What a head-end reads first from a new ESME, as the public client."""
    from firmware.dlms import obis as O

    reading = {}
    with dlms_client(profile, framing, host, port) as client:
        reading["logical_device_name"] = client.get(1, O.LOGICAL_DEVICE_NAME, 2)
        reading["clock"] = client.get(8, O.CLOCK, 2)
        registers = [("import active energy", O.IMPORT_ACTIVE_ENERGY)]
        registers += [("import rate %d" % (i + 1), ln)
                      for i, ln in enumerate(O.IMPORT_ACTIVE_ENERGY_TOU)]
        reading["registers"] = [(label, ln, client.get(3, ln, 2), client.get(3, ln, 3))
                                for label, ln in registers]
        columns = client.get(7, O.HH_PROFILE, 3)
        rows = client.read_profile(O.HH_PROFILE, from_seconds=now - HH_ENTRIES * 1800,
                                   to_seconds=now)
        reading["hh_columns"] = [_capture_label(column, client) for column in columns[1]]
        reading["hh_rows"] = rows
    if len(rows) != HH_ENTRIES:
        raise DemoFailure("expected the last %d half-hourly entries, read %d"
                          % (HH_ENTRIES, len(rows)))
    return reading


def _capture_label(column, client):
    """(label, scaler, unit) of one capture object definition of a Profile generic."""
    from firmware.dlms import obis as O
    class_id, ln, attribute = column[1][0][1], column[1][1][1], column[1][2][1]
    label = O.NAMES.get(ln, O.obis_text(ln))
    if class_id == 3 and attribute == 2:
        scaler, unit = _scaler_unit(client.get(3, ln, 3))
        return label, scaler, unit
    return label, 0, None


def _scaler_unit(value):
    scaler, unit = value[1][0][1], value[1][1][1]
    return scaler, UNITS.get(unit, "unit %d" % unit)


def _quantity(value, scaler, unit):
    number = value[1] * 10 ** scaler
    text = ("%.3f" % number).rstrip("0").rstrip(".") if scaler < 0 else "%d" % number
    return "%s %s" % (text, unit) if unit else text


def _cosem_time_text(value):
    octets = value[1]
    year = octets[0] << 8 | octets[1]
    return "%04d-%02d-%02d %02d:%02d:%02d" % (year, octets[2], octets[3], octets[5],
                                              octets[6], octets[7])


def print_reading(console, reading):
    from rich.table import Table

    name = reading["logical_device_name"][1]
    summary = Table(title="ESME", show_header=False)
    summary.add_row("logical device name", name.decode("ascii", "replace")
                    if isinstance(name, bytes) else str(name))
    summary.add_row("clock (UTC)", _cosem_time_text(reading["clock"]))
    console.print(summary)

    registers = Table(title="Registers")
    for header in ("register", "OBIS", "value", "scaler", "unit", "reading"):
        registers.add_column(header, justify="left" if header in ("register", "OBIS") else "right")
    from firmware.dlms import obis as O
    for label, ln, value, scaler_unit in reading["registers"]:
        scaler, unit = _scaler_unit(scaler_unit)
        registers.add_row(label, O.obis_text(ln), str(value[1]), str(scaler), unit,
                          _quantity(value, scaler, unit))
    console.print(registers)

    profile = Table(title="Half-hourly profile: the last %d entries" % len(reading["hh_rows"]))
    for label, _, unit in reading["hh_columns"]:
        profile.add_column(label + (" (%s)" % unit if unit else ""), justify="right")
    for row in reading["hh_rows"]:
        cells = []
        for value, (_, scaler, unit) in zip(row, reading["hh_columns"]):
            if value[0] == 9 and len(value[1]) == 12:
                cells.append(_cosem_time_text(value))
            else:
                cells.append(_quantity(value, scaler, None))
        profile.add_row(*cells)
    console.print(profile)


# ---------------------------------------------------------------------------- profile-json


@main.command("profile-json")
@click.argument("profile_path", metavar="TOML|NAME")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=pathlib.Path),
              help="Write here instead of stdout.")
def profile_json(profile_path, output):
    """The JSON form of a TOML profile, as a board loads it."""
    text = json.dumps(load_profile(profile_path), indent=1, sort_keys=True) + "\n"
    if output:
        output.write_text(text)
    else:
        click.echo(text, nl=False)


# ---------------------------------------------------------------------------- flash


@main.command()
@click.option("--port", required=True, metavar="DEV",
              help="The board's MicroPython REPL port, as mpremote connects to it.")
@click.option("--profile", "profile_path", required=True, metavar="TOML|NAME",
              help="Device profile, written to the board as profile.json.")
@click.option("--march", help="mpy-cross -march for native code (armv6m RP2040, xtensawin ESP32).")
@click.option("--board-config", type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path),
              help="board.json: UART, pins, watchdog (see firmware/board/main.py).")
@click.option("--wipe-state", is_flag=True, help="Remove the meter's saved state on the board.")
@click.option("--mpremote", "mpremote_binary", default="mpremote", show_default=True)
@click.option("--mpy-cross", "mpy_cross_binary", default="mpy-cross", show_default=True)
def flash(port, profile_path, march, board_config, wipe_state, mpremote_binary, mpy_cross_binary):
    """Compile the device core, copy it and the profile to a board, verify, reset."""
    from emulator import flash as flashing
    profile_text = json.dumps(load_profile(profile_path), sort_keys=True)
    try:
        flashing.flash(port, profile_text, march=march, wipe_state=wipe_state,
                       board_config_text=board_config.read_text() if board_config else None,
                       mpremote=mpremote_binary, mpy_cross=mpy_cross_binary, log=click.echo)
    except flashing.FlashError as exc:
        raise click.ClickException(str(exc))


# ---------------------------------------------------------------------------- han
from emulator.han_cli import han  # noqa: E402

main.add_command(han)

# ---------------------------------------------------------------------------- fuzz
from emulator.fuzz.cli import fuzz  # noqa: E402

main.add_command(fuzz)


if __name__ == "__main__":
    main()
