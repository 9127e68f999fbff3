"""Drive virtual NCPs without a pty or wall clock: an EZSP host in simulated time.

The host side is bellows' own: ASH frames are built and parsed with ``bellows.ash``
frame classes and EZSP parameters with the per-version tables, so a test through this
link checks the NCP against bellows' encoding, not against the NCP's own. Time only
moves when the simulation runs, so a run with loss is exactly repeatable.

    sim = Simulation(medium)
    hub = sim.host(VirtualNcp(eui, medium, ezsp_version=13))
    hub.start()                                   # RST/RSTACK, version
    hub.command("formNetwork", parameters=...)    # -> reply values, callbacks collected
    sim.run_for(1.0)
"""

from __future__ import annotations

import bellows.ash as bash
import bellows.types as t

from emulator.ncp.ezsp import CommandTable, canonical


class Simulation:
    def __init__(self, medium=None, start: float = 0.0):
        self.medium = medium
        self.now = start
        self.hosts: list = []

    def host(self, ncp) -> "SimHost":
        h = SimHost(self, ncp)
        self.hosts.append(h)
        return h

    def _deadlines(self):
        times = [h.ncp.next_deadline() for h in self.hosts]
        if self.medium is not None:
            times.append(self.medium.next_deadline())
        return [d for d in times if d is not None]

    def step(self) -> None:
        """Exchange all pending serial bytes at ``now``, then run what is due."""
        for _ in range(1000):
            moved = False
            if self.medium is not None and self.medium.poll(self.now):
                moved = True
            for h in self.hosts:
                h.ncp.poll(self.now)
                moved |= h.pump()
            if not moved:
                return
        raise RuntimeError("simulation does not settle")

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        self.step()
        while True:
            due = [d for d in self._deadlines() if d <= end]
            if not due:
                break
            self.now = max(self.now, min(due))
            self.step()
        self.now = end
        self.step()

    def run_until(self, predicate, timeout: float = 10.0) -> bool:
        end = self.now + timeout
        self.step()
        while not predicate():
            due = [d for d in self._deadlines() if d <= end]
            if not due:
                return False
            self.now = max(self.now, min(due))
            self.step()
        return True


T_RSTACK_MAX = 3.2      # seconds a host waits for RSTACK before resetting again (UG101)


class SimHost:
    """A minimal EZSP host on one NCP: ASH acks, one command at a time."""

    def __init__(self, sim: Simulation, ncp):
        self.sim = sim
        self.ncp = ncp
        self.table = CommandTable(ncp.version)
        self.rx = bytearray()
        self.tx_seq = 0
        self.rx_seq = 0
        self.ezsp_seq = 0
        self.replies: list = []             # (name, values) replies to commands
        self.callbacks: list = []           # (name, values) callbacks, in order
        self.ash_frames: list = []          # every ASH frame from the NCP
        self.drop_next_acks = 0             # tests: host "loses" the NCP's next DATA frames

    def write(self, data: bytes) -> None:
        self.ncp.receive(data, self.sim.now)

    def pump(self) -> bool:
        out = self.ncp.outgoing()
        if not out:
            return False
        self.rx += out
        while b"\x7e" in self.rx:
            raw, _, rest = bytes(self.rx).partition(b"\x7e")
            self.rx = bytearray(rest)
            if raw:
                self._frame(bash.AshProtocol._unstuff_bytes(raw))
        return True

    def _frame(self, data: bytes) -> None:
        frame = bash.parse_frame(data)
        self.ash_frames.append(frame)
        if isinstance(frame, bash.DataFrame):
            if self.drop_next_acks:
                self.drop_next_acks -= 1
                return
            if frame.frm_num == self.rx_seq:
                self.rx_seq = (self.rx_seq + 1) % 8
                self._ezsp(frame.ezsp_frame)
            self._send(bash.AckFrame(res=0, ncp_ready=0, ack_num=self.rx_seq))

    def _ezsp(self, data: bytes) -> None:
        fc = data[1]
        if self.table.version >= 8 and len(data) >= 5 and data[2] == 0x01:
            frame_id, params = int.from_bytes(data[3:5], "little"), data[5:]
        else:
            frame_id, params = data[2], data[3:]
        name = self.table.by_id[frame_id]
        schema = self.table.commands[name][2]
        if isinstance(schema, dict):
            values, _rest = t.deserialize_dict(params, schema)
        else:
            struct_, _rest = schema.deserialize(params)
            values = struct_.as_dict()
        values = {canonical(k): v for k, v in values.items()}
        (self.callbacks if fc & 0x18 else self.replies).append((name, values))

    def _send(self, frame) -> None:
        self.write(bash.AshProtocol._stuff_bytes(frame.to_bytes()) + b"\x7e")

    def send_ezsp(self, ezsp: bytes, re_tx: bool = False, frm_num=None) -> None:
        frame = bash.DataFrame(frm_num=self.tx_seq if frm_num is None else frm_num,
                               re_tx=re_tx, ack_num=self.rx_seq, ezsp_frame=ezsp)
        if frm_num is None:
            self.tx_seq = (self.tx_seq + 1) % 8
        self._send(frame)

    def encode(self, name: str, legacy: bool = False, **params) -> bytes:
        cmd_id, tx_schema, _rx = self.table.commands[name]
        seq = self.ezsp_seq
        self.ezsp_seq = (self.ezsp_seq + 1) % 256
        if legacy or self.table.version < 5:
            header = bytes((seq, 0x00, cmd_id))
        elif self.table.version < 8:
            header = bytes((seq, 0x00, 0xFF, 0x00, cmd_id))
        else:
            header = bytes((seq, 0x00, 0x01)) + cmd_id.to_bytes(2, "little")
        names = {canonical(k): k for k in tx_schema}
        return header + t.serialize_dict((), {names[k]: v for k, v in params.items()},
                                         tx_schema)

    def command(self, name: str, timeout: float = 2.0, legacy: bool = False, **params):
        """Send one command; run the simulation until its reply; return the reply values."""
        before = len(self.replies)
        self.send_ezsp(self.encode(name, legacy=legacy, **params))
        if not self.sim.run_until(lambda: len(self.replies) > before, timeout):
            raise TimeoutError(f"no reply to {name}")
        reply_name, values = self.replies[before]
        if reply_name != name:
            raise AssertionError(f"{name} answered by {reply_name}: {values}")
        return values

    def start(self, attempts: int = 3) -> None:
        """RST -> RSTACK, then the version handshake as bellows does it.

        The RST is sent again when no RSTACK comes within UG101's T_RSTACK_MAX, as bellows
        does: after a Substitute byte the NCP ignores everything up to the next flag
        (UG101 §2.3), and that flag is the one closing the first RST."""
        before = len(self.ash_frames)
        for _ in range(attempts):
            self.write(b"\x1a" * 32 + bash.AshProtocol._stuff_bytes(
                bash.RstFrame().to_bytes()) + b"\x7e")
            if self.sim.run_until(lambda: any(isinstance(f, bash.RStackFrame)
                                              for f in self.ash_frames[before:]),
                                  T_RSTACK_MAX):
                break
        self.tx_seq = self.rx_seq = 0
        self.command("version", legacy=True, desired_protocol_version=4)
        self.command("version", desired_protocol_version=self.ncp.version)

    def callbacks_named(self, name: str) -> list:
        return [values for n, values in self.callbacks if n == name]
