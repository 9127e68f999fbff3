"""Hardware in the loop: one pytest plugin, any DUT.

    pytest --dut inprocess:esme-single-phase hil/scenarios
    pytest --dut micropython:esme-single-phase --hil-scenarios hil/scenarios --hil-report out/
    pytest --dut serial:/dev/ttyACM0@115200 --hil-power-command "uhubctl -a cycle -p 2" ...
    pytest --dut tcp:192.0.2.7:4059/wrapper tests/my_rig_tests.py

- `hil.resources`: what exists (serial port, pty pair, TCP endpoint, subprocess, the core
  in process, power switch)
- `hil.drivers`: how to use it (HDLC, wrapper, DLMS, GBCS through the lab; frame log)
- `hil.targets`: a target built from the `--dut` string, and the `Dut` tests get
- `hil.scenario`: TOML scenarios with per-step budgets (`hil/scenarios/`)
- `hil.report`: the campaign summary (scenario × DUT) in Markdown and HTML
- `hil.plugin`: the pytest plugin (entry point `pytest11: smets_hil`)
"""
