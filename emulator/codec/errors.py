"""The one error type of the host codecs (ARCHITECTURE.md principle 6).

Every `emulator/codec/` layer raises a subclass of `CodecError` carrying the byte
offset where decoding failed, a human reason, and the layer name, so a bad frame
reads as ``hdlc: offset 7: FCS mismatch (got 0x1234, want 0xbeef)``.
"""


class CodecError(Exception):
    """A frame or value that a host codec cannot decode or encode.

    Subclasses set ``layer`` (class attribute) or pass ``layer=`` per instance.
    ``offset`` is the byte offset into the decoded buffer (``None`` for encode errors
    that have no position).
    """

    layer = "codec"

    def __init__(self, offset, reason, layer=None):
        super().__init__(offset, reason)
        self.offset = offset
        self.reason = reason
        if layer is not None:
            self.layer = layer

    def __str__(self):
        if self.offset is None:
            return "%s: %s" % (self.layer, self.reason)
        return "%s: offset %d: %s" % (self.layer, self.offset, self.reason)

    def __repr__(self):
        return "%s(offset=%r, reason=%r, layer=%r)" % (
            type(self).__name__, self.offset, self.reason, self.layer)
