"""`smets-emu han`: the lab's premise on a ZigBee SE HAN, on an EZSP radio through bellows.

    smets-emu han --radio /dev/ttyUSB0                 # the hub forms on a dongle
    smets-emu han --radio /dev/ttyUSB0 --node esme=/dev/ttyUSB1 --node ihd=/dev/ttyUSB2
    smets-emu han --radio virtual --band 868 --pcap han.pcap   # virtual NCPs on ptys

The hub (CHF + GPF) always runs; `--profile` chooses which of the lab's HAN devices run
too (each on its own radio: virtual NCPs with `--radio virtual`, dongles with `--node
ROLE=PORT`). With the ESME on the HAN the lab's demo sequence runs through it (head-end ->
DCC -> hub -> ZigBee tunnel -> ESME); the IHD, CAD and PPMID read what they show. With a
dongle and no emulated ESME the hub serves the HAN (real IHDs and meters can join) for
`--duration` seconds. docs/HARDWARE.md has the dongles and firmware.
"""

from __future__ import annotations

import asyncio
import json
import pathlib

import click

from emulator.zigbee.radio import DEFAULT_PAGE, GB_PAGES, HAN_MAX_TRANSFER, SubGhzUnavailable
from emulator.zigbee import PROFILES, ROLES


def _node_option(values):
    nodes = {}
    for text in values:
        role, _, port = text.partition("=")
        if role not in ROLES or not port:
            raise click.BadParameter("ROLE=PORT with ROLE one of %s" % ", ".join(ROLES),
                                     param_hint="--node")
        nodes[role] = port
    return nodes


@click.command("han")
@click.option("--radio", required=True, metavar="PORT|virtual",
              help="The hub's EZSP radio: a serial port (EmberZNet NCP) or 'virtual'.")
@click.option("--band", type=click.Choice(["2.4", "868"]), default="2.4", show_default=True,
              help="868: the HAN devices join on GB sub-GHz (the hub runs both bands).")
@click.option("--channel", type=click.IntRange(11, 26), default=15, show_default=True,
              help="2.4 GHz channel the hub forms on.")
@click.option("--page", type=click.Choice([str(p) for p in GB_PAGES]),
              default=str(DEFAULT_PAGE), show_default=True, help="868: channel page.")
@click.option("--sub-channel", type=click.IntRange(0, 26), default=0, show_default=True,
              help="868: channel within the page.")
@click.option("--profile", type=click.Choice(sorted(PROFILES)), default="full",
              show_default=True, help="Which HAN devices of the lab run: " + "; ".join(
                  "%s = %s" % (k, "+".join(v)) for k, v in sorted(PROFILES.items())))
@click.option("--node", "nodes", multiple=True, metavar="ROLE=PORT",
              help="Run an emulated HAN device on another EZSP dongle (repeatable).")
@click.option("--ezsp-version", type=int, default=13, show_default=True,
              help="--radio virtual: the EZSP version the virtual NCPs speak.")
@click.option("--virtual-bands", default="2.4,868", show_default=True, metavar="BANDS",
              help="--radio virtual: the bands the virtual hub radio has ('2.4' emulates a "
              "2.4 GHz-only dongle).")
@click.option("--max-transfer", type=click.IntRange(16, 0xFFFF), default=HAN_MAX_TRANSFER,
              show_default=True, help="Tunnel MaximumIncomingTransferSize the hub and the "
              "tunnel nodes advertise (GB devices: 1500). A TransferData longer than one "
              "APS frame goes as APS blocks.")
@click.option("--baudrate", type=int, default=115200, show_default=True)
@click.option("--pcap", "pcap_path", type=click.Path(dir_okay=False, path_type=pathlib.Path),
              help="--radio virtual: write every frame on the air here (IEEE 802.15.4).")
@click.option("--duration", type=float, default=0.0, show_default=True,
              help="Seconds to keep serving the HAN after the run (0: stop).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hop and reading.")
def han(radio, band, channel, page, sub_channel, profile, nodes, ezsp_version, virtual_bands,
        max_transfer, baudrate, pcap_path, duration, seed, as_json):
    """Form the HAN on an EZSP radio and run the lab (or a subset) on it."""
    node_ports = _node_option(nodes)
    virtual = radio == "virtual"
    if pcap_path is not None and not virtual:
        raise click.BadParameter("a dongle's air is not visible to the host: capture with a "
                                 "802.15.4 sniffer, or use --radio virtual", param_hint="--pcap")
    if virtual and node_ports:
        raise click.BadParameter("--radio virtual puts every device on a virtual NCP",
                                 param_hint="--node")
    hub_bands = tuple(b.strip() for b in virtual_bands.split(",") if b.strip())
    if not hub_bands or not set(hub_bands) <= {"2.4", "868"}:
        raise click.BadParameter("a list of 2.4 and 868", param_hint="--virtual-bands")
    roles = tuple(PROFILES[profile]) if virtual else tuple(node_ports)
    try:
        report = asyncio.run(_run(radio, band, channel, (int(page), sub_channel), roles,
                                  node_ports, ezsp_version, hub_bands, max_transfer, baudrate,
                                  pcap_path, duration, seed))
    except SubGhzUnavailable as e:
        raise click.ClickException(str(e))
    except (OSError, asyncio.TimeoutError, ConnectionError) as e:
        raise click.ClickException("the radio on %s did not come up: %s" % (
            radio, e or type(e).__name__))
    _print(report, as_json)
    if not report["ok"]:
        raise SystemExit(1)


async def _run(radio, band, channel, sub_ghz, roles, node_ports, ezsp_version, hub_bands,
               max_transfer, baudrate, pcap_path, duration, seed):
    import emulator.lab as lab_module
    from emulator.zigbee.rig import HanRig, VirtualRadios

    lab = lab_module.Lab(seed=seed, wan="direct")
    radios = None
    if radio == "virtual":
        radios = VirtualRadios(lab_module, roles, ezsp_version=ezsp_version,
                               hub_bands=hub_bands, node_bands=(band,), seed=seed)
        radios.__enter__()
        hub_path, ports = radios.paths["hub"], radios.paths
    else:
        hub_path, ports = radio, node_ports
    rig = HanRig(lab, hub_path, band=band, channel=channel, sub_ghz=sub_ghz,
                 max_transfer=max_transfer, baudrate=baudrate)
    try:
        info = await rig.start()
        report = {"network": {"channel": int(info.channel), "pan_id": "%04X" % info.pan_id,
                              "band": band, "sub_ghz": list(sub_ghz) if band == "868" else None},
                  "devices": [], "readings": {}, "steps": [], "ok": True}
        for role in roles:
            await rig.add_node(role, ports[role])
            report["devices"].append(role)
        await _exercise(lab, rig, report)
        if duration > 0:
            await asyncio.sleep(duration)
        report["joined"] = sorted("%04X %s" % (nwk, ieee) for nwk, ieee in
                                  rig.premise.server.nodes.items())
        report["hub_stats"] = dict(rig.premise.server.stats)
    finally:
        await rig.stop()
        if radios is not None:
            radios.__exit__(None, None, None)
            if pcap_path is not None:
                from emulator.pcap import write_pcap
                write_pcap(pcap_path, radios.medium.records)
    if pcap_path is not None:
        report["pcap"] = str(pcap_path)
    return report


async def _exercise(lab, rig, report):
    from emulator.lab import demo_sequence
    from emulator.zigbee import clusters as C

    for role in ("ihd", "cad", "ppmid"):
        node = rig.nodes.get(role)
        if node is not None:
            shown = await node.client.refresh()
            report["readings"][role] = {k: int(v) for k, v in shown.items()}
    gsme = rig.nodes.get("gsme")
    if gsme is not None and "ihd" in rig.nodes:
        from emulator.zigbee.hub import GPF_ENDPOINT
        gas = await rig.nodes["ihd"].client.read(C.Metering, ["current_summ_delivered"],
                                                  endpoint=GPF_ENDPOINT)
        report["readings"]["gpf"] = {k: int(v) for k, v in gas.items()}
    if "esme" in rig.nodes:
        for step in await demo_sequence(lab):
            report["steps"].append({"title": step.title, "ok": step.ok,
                                    "skipped": step.skipped,
                                    "hops": [h.to_json() for h in step.outcome.hops]
                                    if step.outcome else []})
            report["ok"] = report["ok"] and step.ok


def _print(report, as_json):
    if as_json:
        for step in report["steps"]:
            for hop in step["hops"]:
                click.echo(json.dumps(hop))
        click.echo(json.dumps({k: v for k, v in report.items() if k != "steps"} |
                              {"steps": [{"title": s["title"], "ok": s["ok"]}
                                         for s in report["steps"]]}))
        return
    net = report["network"]
    where = ("868 MHz page %d channel %d (and 2.4 GHz channel %d)" % (
        net["sub_ghz"][0], net["sub_ghz"][1], net["channel"]) if net["band"] == "868"
        else "2.4 GHz channel %d" % net["channel"])
    click.echo("HAN formed: PAN %s on %s; devices: %s" % (
        net["pan_id"], where, ", ".join(report["devices"]) or "none emulated"))
    for role, shown in report["readings"].items():
        click.echo("  %s shows %s" % (role, ", ".join("%s=%s" % kv for kv in shown.items())))
    for step in report["steps"]:
        mark = "not run" if step["skipped"] else ("ok" if step["ok"] else "FAILED")
        click.echo("  [%s] %s (%d hops)" % (mark, step["title"], len(step["hops"])))
    if report.get("pcap"):
        click.echo("pcap written to %s" % report["pcap"])
