"""Association LN, class_id 15, version 1 (Blue Book 4.4.3) and SAP assignment,
class_id 17, version 0 (Blue Book 4.4.5).

One AssociationLN object per client (LogicalDevice.add_client binds it); inside that
client's association it is also 0.0.40.0.0.255. Its object_list shows what that
client may reach, each element
  structure {class_id long-unsigned, version unsigned, logical_name octet-string,
    access_rights structure {
      array of structure {attribute_id integer, access_mode enum,
                          access_selectors array of integer | null-data},
      array of structure {method_id integer, access_mode enum}}}
(version 1: method access_mode is an enum, 0 no_access / 1 access; Gurux's
GXDLMSAssociationLogicalName.updateAccessRights reads enum or boolean).

application_context_name (4) and authentication_mechanism_name (6) use the structure
form of 7 elements {2, 16, 756, 5, 8, 1|2, id} (joint-iso-ccitt country(16)
country-name(756) identified-organization(5) DLMS-UA(8) application-context(1) /
authentication-mechanism-name(2)). secret (7) is write-only. No HLS in this device:
every method answers object-unavailable.
"""

from firmware.cosem.base import (CosemObject, DataAccessError, ActionError, expect, expect_int,
                                 expect_structure, expect_logical_name, hex_bytes,
                                 bytes_hex)
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms.obis import CURRENT_ASSOCIATION, SAP_ASSIGNMENT

CONTEXT_LN_NO_CIPHERING = 1
NON_ASSOCIATED = 0
ASSOCIATION_PENDING = 1
ASSOCIATED = 2
DLMS_VERSION = 6
NO_SECURITY_SETUP = b"\x00" * 6


def _oid_structure(kind, last):
    return (axdr.STRUCTURE, [(axdr.UNSIGNED, 2), (axdr.UNSIGNED, 16),
                             (axdr.LONG_UNSIGNED, 756), (axdr.UNSIGNED, 5),
                             (axdr.UNSIGNED, 8), (axdr.UNSIGNED, kind),
                             (axdr.UNSIGNED, last)])


def conformance_bits(conformance):
    """24-bit conformance block (Green Book 9.4.6.1) as an A-XDR bit-string."""
    return (axdr.BIT_STRING, (24, bytes(((conformance >> 16) & 0xFF,
                                         (conformance >> 8) & 0xFF, conformance & 0xFF))))


def object_list_element(obj, rights):
    attributes = []
    for i in range(1, obj.attribute_count + 1):
        selectors = obj.selectors(i)
        if selectors:
            sel = (axdr.ARRAY, [(axdr.INTEGER, s) for s in selectors])
        else:
            sel = (axdr.NULL_DATA, None)
        mode = rights.attribute(i) if rights is not None else 0
        attributes.append((axdr.STRUCTURE, [(axdr.INTEGER, i), (axdr.ENUM, mode), sel]))
    methods = []
    for i in range(1, obj.method_count + 1):
        mode = rights.method(i) if rights is not None else 0
        methods.append((axdr.STRUCTURE, [(axdr.INTEGER, i), (axdr.ENUM, mode)]))
    return (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, obj.class_id), (axdr.UNSIGNED, obj.version),
                             (axdr.OCTET_STRING, obj.logical_name),
                             (axdr.STRUCTURE, [(axdr.ARRAY, attributes),
                                               (axdr.ARRAY, methods)])])


class AssociationLN(CosemObject):
    class_id = 15
    version = 1
    attribute_count = 9
    method_count = 6

    def __init__(self, logical_name=CURRENT_ASSOCIATION, conformance=0,
                 max_receive_pdu_size=1024, max_send_pdu_size=1024,
                 security_setup_reference=NO_SECURITY_SETUP):
        CosemObject.__init__(self, logical_name)
        self.conformance = conformance          # offered when no session says otherwise
        self.max_receive_pdu_size = max_receive_pdu_size
        self.max_send_pdu_size = max_send_pdu_size
        self.security_setup_reference = security_setup_reference
        self.logical_device = None
        self.config = None
        self.client_sap = None

    def bind(self, logical_device, config):
        self.logical_device = logical_device
        self.config = config
        self.client_sap = config.sap

    def default_rights(self, authentication):
        """Read everything but the secret; a password client may change its secret."""
        from firmware.cosem.logical_device import AccessRights, READ_ONLY, WRITE_ONLY
        modes = [READ_ONLY] * self.attribute_count
        modes[6] = WRITE_ONLY if authentication else 0
        return AccessRights(modes, [0] * self.method_count)

    def object_list(self, client_sap):
        ld = self.logical_device
        if ld is None:
            return (axdr.ARRAY, [])
        return (axdr.ARRAY, [object_list_element(o, ld.rights(client_sap, o))
                             for o in ld.visible_objects(client_sap)])

    def _association(self, ctx):
        session = ctx.session if ctx is not None else None
        if session is None or not hasattr(session, "association"):
            return None, None
        return session, session.association(self.client_sap)

    def get_attribute(self, attribute, ctx, selector, parameters):
        sap = self.client_sap if self.client_sap is not None else ctx.client_sap
        if attribute == 2:
            return self.object_list(sap)
        if attribute == 3:
            server_sap = self.logical_device.sap if self.logical_device is not None else 1
            return (axdr.STRUCTURE, [(axdr.INTEGER, sap), (axdr.LONG_UNSIGNED, server_sap)])
        if attribute == 4:
            return _oid_structure(1, CONTEXT_LN_NO_CIPHERING)
        if attribute == 5:
            return self._xdlms_context_info(ctx)
        if attribute == 6:
            mechanism = self.config.authentication if self.config is not None else 0
            return _oid_structure(2, mechanism)
        if attribute == 7:
            raise DataAccessError(R.READ_WRITE_DENIED, "secret is write-only")
        if attribute == 8:
            session, assoc = self._association(ctx)
            return (axdr.ENUM, ASSOCIATED if assoc is not None else NON_ASSOCIATED)
        return (axdr.OCTET_STRING, self.security_setup_reference)

    def _xdlms_context_info(self, ctx):
        conformance = self.conformance
        max_receive = self.max_receive_pdu_size
        max_send = self.max_send_pdu_size
        session, assoc = self._association(ctx)
        if assoc is not None:
            conformance = getattr(assoc, "conformance", conformance)
            max_send = getattr(assoc, "max_pdu_size", max_send)
            server = getattr(session, "server", None)
            max_receive = getattr(server, "max_pdu_size", max_receive)
        # structure {conformance bit-string(24), max_receive_pdu_size long-unsigned,
        #   max_send_pdu_size long-unsigned, dlms_version_number unsigned,
        #   quality_of_service integer, cyphering_info octet-string} (Blue Book 4.4.3)
        return (axdr.STRUCTURE, [conformance_bits(conformance),
                                 (axdr.LONG_UNSIGNED, max_receive),
                                 (axdr.LONG_UNSIGNED, max_send),
                                 (axdr.UNSIGNED, DLMS_VERSION), (axdr.INTEGER, 0),
                                 (axdr.OCTET_STRING, b"")])

    def set_attribute(self, attribute, value, ctx):
        if attribute == 7:
            secret = expect(value, axdr.OCTET_STRING)
            if self.config is None:
                raise DataAccessError(R.OBJECT_UNAVAILABLE, "association has no client")
            self.config.secret = bytes(secret)
        elif attribute == 9:
            self.security_setup_reference = expect_logical_name(value)
        else:
            raise DataAccessError(R.READ_WRITE_DENIED, "attribute is not writable")

    def state(self):
        return {"security_setup_reference": hex_bytes(self.security_setup_reference)}

    def restore(self, state):
        self.security_setup_reference = bytes_hex(state["security_setup_reference"])


class SapAssignment(CosemObject):
    """SAP_assignment_list (2) ::= array of structure {SAP long-unsigned,
    logical_device_name octet-string}. Method connect_logical_device (1) with one such
    structure adds or renames the assignment of that SAP; an empty name removes it
    (Blue Book 4.4.5)."""
    class_id = 17
    version = 0
    attribute_count = 2
    method_count = 1

    def __init__(self, logical_name=SAP_ASSIGNMENT, assignments=()):
        CosemObject.__init__(self, logical_name)
        self.assignments = [(a[0], bytes(a[1])) for a in assignments]

    def get_attribute(self, attribute, ctx, selector, parameters):
        return (axdr.ARRAY, [(axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, a[0]),
                                               (axdr.OCTET_STRING, a[1])])
                             for a in self.assignments])

    def set_attribute(self, attribute, value, ctx):
        raise DataAccessError(R.READ_WRITE_DENIED, "changed by connect_logical_device")

    def run_method(self, method, parameters, ctx):
        try:
            items = expect_structure(parameters, 2)
            sap = expect_int(items[0], axdr.LONG_UNSIGNED, 0, 0xFFFF)
            name = bytes(expect(items[1], axdr.OCTET_STRING))
        except DataAccessError as e:
            raise ActionError(e.code, e.reason)
        kept = [a for a in self.assignments if a[0] != sap]
        if name:
            kept.append((sap, name))
            kept.sort()
        self.assignments = kept
        return None

    def state(self):
        return {"assignments": [[a[0], hex_bytes(a[1])] for a in self.assignments]}

    def restore(self, state):
        self.assignments = [(a[0], bytes_hex(a[1])) for a in state["assignments"]]
