"""The serving edge: moves bytes between the outside world and a device runtime.

- `device.ServedDevice`: a runtime (`emulator/runtime.py`) with its simulated time and
  connection ids; advances the device before every request.
- `clock.SimulatedTime`: simulated seconds at `--speed N` times wall time.
- `tcp.TcpServer`: one TCP connection per device connection, wrapper or HDLC framing.
- `pty.PtyServer`: HDLC on a new pseudo-terminal (prints the slave path).
- `serial.SerialServer`: HDLC on a real serial port through pyserial.
- `streams`: the blocking client-side streams the host client talks through.
"""
