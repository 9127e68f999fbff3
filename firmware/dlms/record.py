"""Plain value records for the APDU, ACCESS and ACSE classes: equality by fields, a
readable repr, and `fields()` as plain dicts (nested records and lists included), the
form the host construct codecs produce so the two can be compared."""


class Record:
    FIELDS = ()

    def fields(self):
        out = {}
        for name in self.FIELDS:
            out[name] = plain(getattr(self, name))
        return out

    def __eq__(self, other):
        if type(other) is not type(self):
            return False
        for name in self.FIELDS:
            if getattr(self, name) != getattr(other, name):
                return False
        return True

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        parts = []
        for name in self.FIELDS:
            parts.append("%s=%r" % (name, getattr(self, name)))
        return "%s(%s)" % (type(self).__name__, ", ".join(parts))


def plain(value):
    if isinstance(value, Record):
        return value.fields()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
