"""The management logical device: its COSEM objects, its clients and who may do what.

Contract: docs/CORE_INTERFACES.md section 2. Access rights follow the Association LN
object_list model (Blue Book 4.4.3): per client SAP, one access mode per attribute
(0 no-access, 1 read-only, 2 write-only, 3 read-and-write) and one per method
(0 no-access, 1 access). A client sees an object only if it holds a rights entry for
it; everything else is outside its association.

Clients (Green Book 9.3.2 / GB profile): the public client (SAP 16) associates with
the lowest-level security and is read-only on what the profile grants; the
management client (SAP 1) uses a low-level-security password. Each client has its own
Association LN object; inside that client's association the logical name
0.0.40.0.0.255 ("current association") resolves to it.
"""

from firmware.dlms.obis import CURRENT_ASSOCIATION   # 0.0.40.0.0.255, Blue Book 4.4.3

ASSOCIATION_LN_CLASS = 15

NO_ACCESS = 0
READ_ONLY = 1
WRITE_ONLY = 2
READ_AND_WRITE = 3

AUTH_LOWEST = 0        # mechanism id 0: no authentication
AUTH_LOW = 1           # mechanism id 1: low-level security (password)

PUBLIC_CLIENT = 16
MANAGEMENT_CLIENT = 1


class AccessRights:
    """Access modes of one client on one object; index 0 is attribute/method 1."""

    def __init__(self, attribute_modes, method_modes=()):
        for m in attribute_modes:
            if m < 0 or m > 3:
                raise ValueError("attribute access mode must be 0..3")
        for m in method_modes:
            if m < 0 or m > 1:
                raise ValueError("method access mode must be 0 or 1")
        self.attribute_modes = tuple(attribute_modes)
        self.method_modes = tuple(method_modes)

    def attribute(self, attribute):
        if 1 <= attribute <= len(self.attribute_modes):
            return self.attribute_modes[attribute - 1]
        return NO_ACCESS

    def method(self, method):
        if 1 <= method <= len(self.method_modes):
            return self.method_modes[method - 1]
        return NO_ACCESS

    def can_read(self, attribute):
        return self.attribute(attribute) & READ_ONLY != 0

    def can_write(self, attribute):
        return self.attribute(attribute) & WRITE_ONLY != 0

    def can_invoke(self, method):
        return self.method(method) != NO_ACCESS

    def is_read_only(self):
        for m in self.attribute_modes:
            if m & WRITE_ONLY:
                return False
        for m in self.method_modes:
            if m:
                return False
        return True

    def read_part(self):
        """These rights without write access and without methods."""
        return AccessRights([m & READ_ONLY for m in self.attribute_modes],
                            [NO_ACCESS] * len(self.method_modes))

    def grants_anything(self):
        for m in self.attribute_modes:
            if m:
                return True
        for m in self.method_modes:
            if m:
                return True
        return False


def read_only(obj):
    """Read access to every attribute of `obj`, no methods (the public client's usual)."""
    return AccessRights([READ_ONLY] * obj.attribute_count, [NO_ACCESS] * obj.method_count)


def full_access(obj):
    """Read-write on every attribute but the logical name, access to every method."""
    modes = [READ_AND_WRITE] * obj.attribute_count
    modes[0] = READ_ONLY
    return AccessRights(modes, [1] * obj.method_count)


class ClientConfig:
    """One client SAP the logical device serves, and its own Association LN object."""

    def __init__(self, sap, authentication, secret, association, association_rights=None):
        self.sap = sap
        self.authentication = authentication
        self.secret = secret
        self.association = association
        self.association_rights = association_rights


class LogicalDevice:
    def __init__(self, sap=1, name=b""):
        self.sap = sap              # the server (logical device) SAP, 1 = management LD
        self.name = name            # COSEM logical device name (Blue Book 4.1.8.2)
        self._objects = []
        self._rights = []           # parallel to _objects: {client_sap: AccessRights}
        self._index = {}            # (class_id, logical_name) -> position
        self._clients = {}

    # -- objects ------------------------------------------------------------------

    def add(self, obj, rights):
        key = (obj.class_id, obj.logical_name)
        if key in self._index:
            raise ValueError("object already present")
        self._index[key] = len(self._objects)
        self._objects.append(obj)
        self._rights.append(dict(rights))
        return obj

    def find(self, class_id, logical_name, client_sap=None):
        """The object, or None. 0.0.40.0.0.255 needs `client_sap` to resolve."""
        logical_name = bytes(logical_name)
        if class_id == ASSOCIATION_LN_CLASS and logical_name == CURRENT_ASSOCIATION:
            config = self._clients.get(client_sap)
            if config is not None and config.association is not None:
                return config.association
        i = self._index.get((class_id, logical_name))
        return None if i is None else self._objects[i]

    def find_by_name(self, logical_name):
        logical_name = bytes(logical_name)
        for obj in self._objects:
            if obj.logical_name == logical_name:
                return obj
        return None

    def objects(self):
        return list(self._objects)

    def visible_objects(self, client_sap):
        """What `client_sap` sees, in the order added, with its own association first."""
        out = []
        config = self._clients.get(client_sap)
        if config is not None and config.association is not None:
            out.append(config.association)
        for i in range(len(self._objects)):
            obj = self._objects[i]
            if obj in out:
                continue
            rights = self._rights[i].get(client_sap)
            if rights is not None and rights.grants_anything():
                out.append(obj)
        return out

    # -- access policy ------------------------------------------------------------

    def rights(self, client_sap, obj):
        """The client's AccessRights on `obj`, or None when it is outside its association."""
        config = self._clients.get(client_sap)
        if config is not None and obj is config.association:
            return config.association_rights
        i = self._index.get((obj.class_id, obj.logical_name))
        if i is None or self._objects[i] is not obj:
            return None
        rights = self._rights[i].get(client_sap)
        if rights is not None and config is not None \
                and config.authentication == AUTH_LOWEST and not rights.is_read_only():
            # A client without authentication only ever reads (GB: the public client),
            # whatever a profile grants it; the object list shows the same.
            rights = rights.read_part()
        return rights

    def attribute_access(self, client_sap, obj, attribute):
        rights = self.rights(client_sap, obj)
        return NO_ACCESS if rights is None else rights.attribute(attribute)

    def method_access(self, client_sap, obj, method):
        rights = self.rights(client_sap, obj)
        return NO_ACCESS if rights is None else rights.method(method)

    # -- clients ------------------------------------------------------------------

    def add_client(self, sap, authentication, secret=None, association=None,
                   association_rights=None):
        """Register a client SAP; `association` is its AssociationLN (bound here)."""
        if sap in self._clients:
            raise ValueError("client already present")
        config = ClientConfig(sap, authentication, secret, association, association_rights)
        if association is not None:
            if association_rights is None:
                config.association_rights = association.default_rights(authentication)
            association.bind(self, config)
        self._clients[sap] = config
        return config

    def client(self, client_sap):
        return self._clients.get(client_sap)

    def clients(self):
        saps = sorted(self._clients.keys())
        return [self._clients[s] for s in saps]

    # -- persistence --------------------------------------------------------------

    def state(self):
        """Dynamic state of every object and client secret, keyed by class and name."""
        objects = {}
        for obj in self._all_objects():
            s = obj.state()
            if s:
                objects[_key(obj)] = s
        secrets = {}
        for sap in self._clients:
            secret = self._clients[sap].secret
            if secret is not None:
                secrets[str(sap)] = _hex(secret)
        return {"objects": objects, "secrets": secrets}

    def restore(self, state):
        objects = state.get("objects", {})
        for obj in self._all_objects():
            s = objects.get(_key(obj))
            if s is not None:
                obj.restore(s)
        secrets = state.get("secrets", {})
        for sap in self._clients:
            if str(sap) in secrets:
                self._clients[sap].secret = _unhex(secrets[str(sap)])

    def _all_objects(self):
        out = list(self._objects)
        for sap in sorted(self._clients.keys()):
            assoc = self._clients[sap].association
            if assoc is not None and assoc not in out:
                out.append(assoc)
        return out


def _key(obj):
    # A client's association may share 0.0.40.0.0.255 with another's: add the SAP.
    name = "%d/%s" % (obj.class_id, _hex(obj.logical_name))
    sap = getattr(obj, "client_sap", None)
    if obj.class_id == ASSOCIATION_LN_CLASS and sap is not None:
        name = name + "/" + str(sap)
    return name


def _hex(b):
    import binascii
    return binascii.hexlify(b).decode()


def _unhex(s):
    import binascii
    return binascii.unhexlify(s)
