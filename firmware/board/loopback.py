"""A loopback core with MeterCore's API: every byte received is sent straight back.

It lets the board edge (the stdio pipe, the host transports) be checked on its own,
the way a serial line is checked with a loopback plug before a device is attached.
"""


class LoopbackCore:
    def __init__(self, now=0):
        self._now = now
        self._framings = {}

    @property
    def now(self):
        return self._now

    def connections(self):
        return list(self._framings.keys())

    def open(self, conn_id, framing):
        if conn_id in self._framings:
            raise ValueError("connection %d is already open" % conn_id)
        self._framings[conn_id] = framing

    def receive(self, conn_id, data):
        if conn_id not in self._framings:
            raise ValueError("connection %d is not open" % conn_id)
        return bytes(data)

    def close(self, conn_id):
        if conn_id not in self._framings:
            raise ValueError("connection %d is not open" % conn_id)
        del self._framings[conn_id]

    def advance(self, now):
        if now > self._now:
            self._now = now

    def save(self):
        return False

    def shutdown(self):
        self._framings = {}
