"""GBCS codes: one source of truth (ARCHITECTURE.md principle 8).

- message codes per use case (GBCS v4 Table 13.3.1; every code below that RTDS 4.5.0 holds
  was read from the vectors with `firmware.gbcs.envelope.parse`, names cross-checked with
  gbcs-parser `src/util.ts` and Wireshark `packet-gbcs.c`);
- alert codes (GBCS Table 16.2) and the alert message codes that carry them;
- remote-party roles and trust-anchor cell usages (GBCS 4.3.2, SMKI);
- `USE_CASES`: name -> (message code, critical, device type, payload kind);
- `SENDER_ROLES`: message code -> the remote-party roles whose commands the device obeys.

Critical use cases: the command is signed by the originator and MAC'd by the ACB, and the
response is signed only (checked on every RTDS command/response pair in
tests/firmware/test_gbcs_codes.py). One exception in RTDS (8.5): CS02b ACB-by-ACB is critical
(signed response) but its command is authenticated by the ACB's MAC alone: see
`MAC_AUTHORISED_CRITICAL`.
"""

# -- device types and payload kinds (GBCS_INTERFACES.md section 2) -----------------------
ESME = "ESME"
GSME = "GSME"
CHF = "CHF"
GPF = "GPF"
ANY_DEVICE = "ANY"        # CS02b/CS02e/CS03: the same use case on any SMETS2 device

DLMS = "DLMS"
GBZ = "GBZ"
ASN1 = "ASN1"

# -- remote-party roles (GBCS 4.3.2.3 RemotePartyRole; SMKI OU=<role>) ----------------
ROLE_ROOT = 0
ROLE_RECOVERY = 1
ROLE_SUPPLIER = 2
ROLE_NETWORK_OPERATOR = 3
ROLE_ACB = 4                   # Access Control Broker (the DCC)
ROLE_TRANSITIONAL_COS = 5
ROLE_WAN_PROVIDER = 6
ROLE_ISSUING_AUTHORITY = 7
ROLE_OTHER = 127

ROLE_NAMES = {
    ROLE_ROOT: "root", ROLE_RECOVERY: "recovery", ROLE_SUPPLIER: "supplier",
    ROLE_NETWORK_OPERATOR: "networkOperator", ROLE_ACB: "accessControlBroker",
    ROLE_TRANSITIONAL_COS: "transitionalCoS", ROLE_WAN_PROVIDER: "wanProvider",
    ROLE_ISSUING_AUTHORITY: "issuingAuthority", ROLE_OTHER: "other",
}

# CellUsage ::= INTEGER { management (0), prePaymentTopUp (1) } DEFAULT management
CELL_MANAGEMENT = 0
CELL_PREPAYMENT = 1

# KeyUsage bits (X.509 KeyUsage BIT STRING, bit 0 first) as a trust-anchor cell names them
KEY_USAGE_DIGITAL_SIGNATURE = 0
KEY_USAGE_KEY_AGREEMENT = 4
KEY_USAGE_KEY_CERT_SIGN = 5

# -- message codes: use cases --------------------------------------------------------
CCS01 = 0x0001            # Add device to CHF device log
CCS02 = 0x0002            # Remove device from CHF device log
CS01A = 0x0007            # Apply prepayment top-up to an ESME (UTRN)
CS02A = 0x0008            # Provide security credentials details
CS02C = 0x000A            # Issue security credentials
CS02D = 0x000B            # Update device certificates on device
CS02E = 0x000C            # Provide device certificates from device
CS03A1 = 0x000D           # Method A join (meter)
CS03B = 0x000E            # Method B join
CS04AC = 0x000F           # Method A or C unjoin
CS04B = 0x0010            # Method B unjoin
CS06 = 0x0012             # Activate firmware
CS08 = 0x0129             # Read PPMID/HCALCS firmware version
ECS01A = 0x0019           # Set tariff and price on ESME
ECS01B = 0x00A2           # Set price on ESME
ECS02 = 0x001A            # Set ESME payment mode to credit
ECS04A = 0x001C           # Adjust meter balance on the ESME
ECS04B = 0x00B3           # Reset meter balance on the ESME
ECS07 = 0x001E            # Manage debt on the ESME
ECS08 = 0x001F            # Update prepayment configuration on ESME
ECS10 = 0x0021            # Send message to ESME
ECS12 = 0x0022            # Set change of tenancy date on ESME
ECS15A = 0x0024           # Clear ESME event log
ECS17B = 0x0027           # Read ESME energy registers (import energy)
ECS18B = 0x002C           # Read maximum demand registers (import)
ECS19 = 0x002D            # Read ESME prepayment registers
ECS20B = 0x002F           # Read ESME billing data log (change of mode / tariff)
ECS20C = 0x0030           # Read ESME billing data log (billing calendar)
ECS21A = 0x0033           # Read electricity daily read log (exc export)
ECS22A = 0x0036           # Read electricity half hour profile data (export)
ECS22B = 0x0037           # Read electricity half hour profile data (active import)
ECS23 = 0x0039            # Read voltage operational data
ECS24 = 0x003A            # Read ESME tariff data
ECS25A1 = 0x00EA          # Set event behaviours - ESME to HAN device - supplier
ECS25B = 0x00B0           # Set alert behaviours - ESME - network operator
ECS25R2 = 0x00EF          # Read non-critical event and alert behaviours - NO
ECS26B = 0x003C           # Read ESME configuration voltage data
ECS26E = 0x003F           # Read ESME configuration data (device identity)
ECS26F = 0x0040           # Read ESME configuration data (power thresholds)
ECS26K = 0x00C6           # Read ESME configuration voltage data - 3 phase
ECS26L = 0x00D9           # Read ESME configuration data (billing calendar)
ECS26N = 0x00FA           # Read CHF configuration data (CH identity and type)
ECS27 = 0x0042            # Read ESME load limit data
ECS29A = 0x0045           # Set voltage configurations on ESME
ECS29D = 0x00D2           # Set voltage configurations on polyphase ESME
ECS29E = 0x00D3           # Reset RMS voltage counters on ESME
ECS34 = 0x0047            # Set instantaneous power threshold configuration
ECS35A = 0x0048           # Read ESME event log
ECS35D = 0x0094           # Read CHF security log
ECS35G = 0x00FD           # Read ALCS event log
ECS37 = 0x004A            # Set maximum demand configurable time period
ECS39A = 0x004C           # Set MPAN value on the ESME
ECS42 = 0x004F            # Remotely close the load switch (enable supply)
ECS43 = 0x0050            # Remotely open the load switch (disable supply)
ECS44 = 0x0051            # Arm load switch
ECS45 = 0x0052            # Read status of load switch
ECS46D = 0x011A           # Set HC ALCS / APC configuration
ECS52 = 0x0059            # Read ESME/comms hub firmware version
ECS61A = 0x00BB           # Read HC ALCS and ALCS data from ESME
ECS61C = 0x005E           # Read boost button data from ESME
ECS61D = 0x011C           # Read APC data from ESME
ECS62 = 0x005F            # Set ALCS and boost button association
ECS70 = 0x0062            # Set clock on ESME (also commission, SRV 8.1.1)
ECS80 = 0x0067            # Supply outage restore alert from ESME
ECS102 = 0x0122           # ESME alert (RTDS NA_ECS102)
GCS01A = 0x006B           # Set tariff and price on GSME
GCS03 = 0x006D            # Set GSME payment mode to prepayment
GCS05 = 0x006F            # Update prepayment configurations on GSME
GCS06 = 0x0070            # Activate emergency credit remotely on GSME
GCS07 = 0x0071            # Send message to GSME
GCS13A = 0x0074           # Read GSME consumption register
GCS13C = 0x00B6           # Read GSME register (TOU)
GCS14 = 0x0075            # Read GSME prepayment registers
GCS15D = 0x00C4           # Read GSME billing data log (payment-based debt payments)
GCS16A = 0x0077           # Read GSME daily read log
GCS17 = 0x0078            # Read GSME profile data log
GCS21A = 0x007B           # Read gas configuration data device information
GCS21B = 0x00B5           # Read GSME configuration data prepayment
GCS24A = 0x00FC           # Set uncontrolled gas flow rate and supply tamper state
GCS25 = 0x007E            # Set billing calendar on the GSME
GCS28 = 0x007F            # Set clock on GSME (also commission, SRV 8.1.1)
GCS31 = 0x0080            # Start network data log on GSME
GCS32 = 0x0081            # Remotely close the valve in the GSME
GCS33 = 0x0082            # Read GSME valve status
GCS36 = 0x0083            # Send CIN to GSME
GCS39 = 0x0085            # Arm valve in GSME
GCS40B = 0x00B4           # Reset prepayment mode meter balance on the GSME
GCS44 = 0x0088            # Write contact details on GSME
GCS60A = 0x012A           # Read meter balance for GSME
GCS61 = 0x00A0            # Read gas daily consumption log
GCS62 = 0x00B2            # Backup GPF device log (alert)
PCS02 = 0x0090            # Activate emergency credit on GSME from PPMID
CS01B = 0x0097            # Apply prepayment top-up to a GSME
CS03A2 = 0x00AB           # Method A join (non meter)
CS03C = 0x00AF            # Method C join
CCS07 = 0x00FE            # Read CHF device logs
CS02G = 0x0126            # Update security credentials (load controller by supplier)
DBCH02 = 0x010B           # Read CHF sub GHz channel log
DBCH05 = 0x010E           # Request CHF sub GHz channel scan
DBCH07 = 0x0111           # Sub GHz channel changed alert
DBCH11 = 0x0115           # No more sub GHz device capacity alert
MIIWA_ESME = 0x00F0       # Meter integrity issue warning alert - ESME

# CS02b Update Security Credentials, one message code per credentials replacement mode
CS02B_ROOT_BY_SUPPLIER = 0x0100
CS02B_ROOT_BY_WAN_PROVIDER = 0x0101
CS02B_SUPPLIER_BY_SUPPLIER = 0x0102
CS02B_NO_BY_NO = 0x0103
CS02B_ACB_BY_ACB = 0x0104
CS02B_WAN_PROVIDER_BY_WAN_PROVIDER = 0x0105
CS02B_TRANSCOS_BY_TRANSCOS = 0x0106
CS02B_SUPPLIER_BY_TRANSCOS = 0x0107
CS02B_ANY_EXCEPT_ABNORMAL_ROOT_BY_RECOVERY = 0x0108
CS02B_ANY_BY_CONTINGENCY = 0x0109
CS02B_CODES = (0x0100, 0x0101, 0x0102, 0x0103, 0x0104, 0x0105, 0x0106, 0x0107, 0x0108, 0x0109)

# -- message codes: alerts ----------------------------------------------------------
GENERIC_CRITICAL_ALERT = 0x1000           # DLMS data-notification, signed
GENERIC_NON_CRITICAL_ALERT = 0x1001       # DLMS data-notification, MAC'd
FUTURE_DATED_FIRMWARE_ACTIVATION_ALERT = 0x00CA
FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT = 0x00CB
FUTURE_DATED_DLMS_ALERT = 0x00CC
FUTURE_DATED_GBZ_ALERT = 0x00CD

# alert message code -> critical (signed) or not (MAC'd); checked on RTDS alerts
ALERT_MESSAGE_CRITICAL = {
    GENERIC_CRITICAL_ALERT: True,
    GENERIC_NON_CRITICAL_ALERT: False,
    FUTURE_DATED_FIRMWARE_ACTIVATION_ALERT: True,
    FUTURE_DATED_UPDATE_SECURITY_CREDENTIALS_ALERT: True,
    FUTURE_DATED_DLMS_ALERT: True,
    FUTURE_DATED_GBZ_ALERT: True,
    ECS80: True,
    ECS102: True,
    0x0124: True,          # CS02g future-dated alert (RTDS 6.15.1)
    0x012B: True,          # CS08 read PPMID/HCALCS firmware version alert (RTDS NA_CS09)
    MIIWA_ESME: False,
    GCS62: False,
    DBCH07: False,
    DBCH11: False,
}

# -- alert codes (GBCS Table 16.2; names as gbcs-parser / Wireshark give them) ----------
# Which alert a refused command raises: 0x8F30 for a source without authority is GBCS's
# (RTDS NA_GCA-DLMS carries it); 0x8F3D for a signature or MAC that does not verify and
# 0x8F53 for a stale counter are reasoned defaults from the code names (unconfirmed: the
# clause text is not public), overridable with DeviceSecurity(refusal_alerts=...).
ALERT_INTEGRITY_CHECK_FAILED = 0x8F1E        # integrity check of content or format failed
ALERT_SOURCE_NOT_AUTHORISED = 0x8F30         # source does not have authority for command
ALERT_SUPPLY_ARMED = 0x8F32
ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE = 0x8F3D   # signature or MAC does not verify
ALERT_UNAUTHORISED_COMMUNICATION_ACCESS = 0x8F3E
ALERT_FAILED_AUTHENTICATION_OTHER = 0x8F53   # counter/replay: failed authentication or
#                                              authorisation not covered by other codes
ALERT_DUPLICATE_UTRN = 0x8F51
ALERT_UNUSUAL_COMMANDS = 0x8F60              # unusual numbers of malformed, out-of-order
#                                              or unexpected commands
ALERT_UTRN_NOT_AUTHENTIC = 0x8F63
ALERT_UTRN_NOT_FOR_THIS_DEVICE = 0x8F64
ALERT_FUTURE_DATED_ACTIONED = 0x8F66         # future-dated command successfully actioned
ALERT_FUTURE_DATED_NOT_ACTIONED = 0x8F67
ALERT_DEVICE_COMMISSIONED = 0x8F69
ALERT_UPDATE_SECURITY_CREDENTIALS = 0x8F70
ALERT_BILLING_DATA_LOG_UPDATED = 0x8F0A
ALERT_CLOCK_NOT_ADJUSTED = 0x8F0C
ALERT_CHF_DEVICE_LOG_CHANGED = 0x8F12
ALERT_GPF_DEVICE_LOG_CHANGED = 0x8071
ALERT_SUB_GHZ_CHANNEL_CHANGED = 0x8F26
ALERT_NO_MORE_SUB_GHZ_DEVICE_CAPACITY = 0x8F2D
ALERT_SUPPLY_OUTAGE_RESTORED = 0x8F35
ALERT_SUPPLY_OUTAGE_RESTORED_3_MINUTES = 0x8F36
ALERT_SMART_METER_INTEGRITY_WARNING = 0x81A0
ALERT_FIRMWARE_TRANSFER_SUCCESS = 0x8F8A
ALERT_READ_FIRMWARE_VERSION = 0x8F8B

ALERT_NAMES = {
    0x8F0A: "Billing Data Log Updated",
    0x8F0C: "Clock not adjusted (adjustment greater than 10 seconds)",
    0x8F12: "CHF Device Log Changed",
    0x8F1E: "Integrity check of content or format of command failed",
    0x8F26: "Sub GHz Channel Changed",
    0x8F2D: "No More Sub GHz Device Capacity",
    0x8F30: "Source Does not have Authority for Command",
    0x8F32: "Supply Armed",
    0x8F35: "Supply Outage Restored",
    0x8F36: "Supply Outage Restored - Outage >= 3 minutes",
    0x8F87: "ESME input alert (ECS102; named only by RTDS NA_ECS102)",
    0x8F3D: "Trusted Source Authentication Failure",
    0x8F3E: "Unauthorised Communication Access attempted",
    0x8F51: "Duplicate UTRN entered",
    0x8F53: "Failed Authentication or Authorisation not covered by other codes",
    0x8F60: "Unusual numbers of malformed, out-of-order or unexpected Commands received",
    0x8F63: "UTRN not Authentic",
    0x8F64: "UTRN not for this Device",
    0x8F66: "Future-date HAN Interface Command Successfully Actioned",
    0x8F67: "Future-date HAN Interface Command not Successfully Actioned",
    0x8F69: "Device commissioned",
    0x8F70: "Update Security Credentials",
    0x8F8A: "Firmware transfer alert SUCCESS",
    0x8F8B: "Read Firmware version alert",
    0x8071: "GPF Device Log Changed",
    0x81A0: "Smart Meter Integrity Issue - Warning",
}


def alert_is_critical(alert_code):
    """Alert codes 0x8Fxx are the critical (signed) ones, 0x80xx/0x81xx non-critical
    (GBCS Table 16.2; RTDS: 0x8F30 and 0x8F66 signed, 0x81A0 MAC'd)."""
    return (alert_code & 0xFF00) == 0x8F00


def alert_message_code(alert_code):
    """The generic alert message code that carries `alert_code` in a DLMS notification."""
    return GENERIC_CRITICAL_ALERT if alert_is_critical(alert_code) else GENERIC_NON_CRITICAL_ALERT


# -- GBCS response codes of the ASN.1 use cases (GBCS section 13) ---------------------------
# StatusCode: outcome of one trust-anchor replacement (CS02a/CS02b responses and alerts)
STATUS_SUCCESS = 0
STATUS_BAD_CERTIFICATE = 5
STATUS_NO_TRUST_ANCHOR = 10
STATUS_INSUFFICIENT_MEMORY = 17
STATUS_TRUST_ANCHOR_NOT_FOUND = 25
STATUS_RESOURCES_BUSY = 30
STATUS_OTHER = 127

# CS03 JoinMethodAndRole, DeviceType and join response codes
JOIN_METHOD_AND_ROLE = {0: "method A initiator", 1: "method A responder", 2: "method B",
                        3: "method C"}
DEVICE_TYPES = {0: "GSME", 1: "ESME", 2: "CHF", 3: "GPF", 4: "HCALCS", 5: "PPMID",
                6: "Type 2"}
JOIN_RESPONSES = {
    0: "success", 1: "invalid message code for join method and role",
    2: "invalid join method and role", 3: "incompatible with existing entry",
    4: "device log full", 5: "write failure", 6: "key agreement no resources",
    7: "key agreement unknown issuer", 8: "key agreement unsupported suite",
    9: "key agreement bad message", 10: "key agreement bad key confirm",
    11: "invalid or missing certificate", 12: "no partner link key received",
    13: "no CBKE response",
}
# CS04 unjoin response codes
UNJOIN_RESPONSES = {0: "success", 1: "not in device log", 2: "other failure"}

# -- use cases: name -> (message code, critical, device type, payload kind) ---------------
USE_CASES = {
    # ESME (DLMS)
    "ECS01a": (ECS01A, True, ESME, DLMS),
    "ECS01b": (ECS01B, True, ESME, DLMS),
    "ECS02": (ECS02, True, ESME, DLMS),
    "ECS04a": (ECS04A, True, ESME, DLMS),
    "ECS04b": (ECS04B, True, ESME, DLMS),
    "ECS07": (ECS07, True, ESME, DLMS),
    "ECS08": (ECS08, True, ESME, DLMS),
    "ECS10": (ECS10, False, ESME, DLMS),
    "ECS12": (ECS12, False, ESME, DLMS),
    "ECS15a": (ECS15A, False, ESME, DLMS),
    "ECS17b": (ECS17B, False, ESME, DLMS),
    "ECS18b": (ECS18B, False, ESME, DLMS),
    "ECS19": (ECS19, False, ESME, DLMS),
    "ECS20b": (ECS20B, False, ESME, DLMS),
    "ECS20c": (ECS20C, False, ESME, DLMS),
    "ECS21a": (ECS21A, False, ESME, DLMS),
    "ECS22a": (ECS22A, False, ESME, DLMS),
    "ECS22b": (ECS22B, False, ESME, DLMS),
    "ECS23": (ECS23, False, ESME, DLMS),
    "ECS24": (ECS24, False, ESME, DLMS),
    "ECS25a1": (ECS25A1, False, ESME, DLMS),
    "ECS25b": (ECS25B, False, ESME, DLMS),
    "ECS25r2": (ECS25R2, False, ESME, DLMS),
    "ECS26b": (ECS26B, False, ESME, DLMS),
    "ECS26e": (ECS26E, False, ESME, DLMS),
    "ECS26f": (ECS26F, False, ESME, DLMS),
    "ECS26k": (ECS26K, False, ESME, DLMS),
    "ECS26l": (ECS26L, False, ESME, DLMS),
    "ECS27": (ECS27, False, ESME, DLMS),
    "ECS29a": (ECS29A, False, ESME, DLMS),
    "ECS29d": (ECS29D, False, ESME, DLMS),
    "ECS29e": (ECS29E, False, ESME, DLMS),
    "ECS34": (ECS34, False, ESME, DLMS),
    "ECS35a": (ECS35A, False, ESME, DLMS),
    "ECS35g": (ECS35G, False, ESME, DLMS),
    "ECS37": (ECS37, False, ESME, DLMS),
    "ECS39a": (ECS39A, False, ESME, DLMS),
    "ECS42": (ECS42, True, ESME, DLMS),
    "ECS43": (ECS43, True, ESME, DLMS),
    "ECS44": (ECS44, True, ESME, DLMS),
    "ECS45": (ECS45, False, ESME, DLMS),
    "ECS46d": (ECS46D, True, ESME, DLMS),
    "ECS52": (ECS52, False, ESME, DLMS),
    "ECS61a": (ECS61A, False, ESME, DLMS),
    "ECS61c": (ECS61C, False, ESME, DLMS),
    "ECS61d": (ECS61D, False, ESME, DLMS),
    "ECS62": (ECS62, False, ESME, DLMS),
    "ECS70": (ECS70, True, ESME, DLMS),
    "ECS70Commission": (ECS70, True, ESME, DLMS),
    "CS01a": (CS01A, False, ESME, DLMS),
    # GSME (GBZ), answered by the GSME or the GPF
    "GCS01a": (GCS01A, True, GSME, GBZ),
    "GCS03": (GCS03, True, GSME, GBZ),
    "GCS05": (GCS05, True, GSME, GBZ),
    "GCS06": (GCS06, True, GSME, GBZ),
    "GCS07": (GCS07, False, GSME, GBZ),
    "GCS13a": (GCS13A, False, GSME, GBZ),
    "GCS13c": (GCS13C, False, GSME, GBZ),
    "GCS14": (GCS14, False, GSME, GBZ),
    "GCS15d": (GCS15D, False, GSME, GBZ),
    "GCS16a": (GCS16A, False, GSME, GBZ),
    "GCS17": (GCS17, False, GSME, GBZ),
    "GCS21a": (GCS21A, False, GSME, GBZ),
    "GCS21b": (GCS21B, False, GSME, GBZ),
    "GCS24a": (GCS24A, True, GSME, GBZ),
    "GCS25": (GCS25, True, GSME, GBZ),
    "GCS28": (GCS28, True, GSME, ASN1),
    "GCS28Commission": (GCS28, True, GSME, ASN1),
    "GCS31": (GCS31, False, GSME, GBZ),
    "GCS32": (GCS32, True, GSME, GBZ),
    "GCS33": (GCS33, False, GSME, GBZ),
    "GCS36": (GCS36, False, GSME, GBZ),
    "GCS39": (GCS39, True, GSME, GBZ),
    "GCS40b": (GCS40B, True, GSME, GBZ),
    "GCS44": (GCS44, False, GSME, GBZ),
    "GCS60a": (GCS60A, False, GSME, GBZ),
    "GCS61": (GCS61, False, GSME, GBZ),
    "CS01b": (CS01B, False, GSME, GBZ),
    "PCS02": (PCS02, False, GSME, GBZ),   # from the PPMID over the HAN, not a remote party
    # comms hub
    "CCS01": (CCS01, False, CHF, DLMS),
    "CCS02": (CCS02, False, CHF, DLMS),
    "CCS07": (CCS07, False, CHF, DLMS),
    "ECS26n": (ECS26N, False, CHF, DLMS),
    "ECS35d": (ECS35D, False, CHF, DLMS),
    "DBCH02": (DBCH02, False, CHF, DLMS),
    "DBCH05": (DBCH05, False, CHF, DLMS),
    # any device (ASN.1 payloads, GBCS section 13)
    "CS02b": (CS02B_SUPPLIER_BY_SUPPLIER, True, ANY_DEVICE, ASN1),
    "CS02bRootBySupplier": (CS02B_ROOT_BY_SUPPLIER, True, ANY_DEVICE, ASN1),
    "CS02bRootByWanProvider": (CS02B_ROOT_BY_WAN_PROVIDER, True, ANY_DEVICE, ASN1),
    "CS02bSupplierBySupplier": (CS02B_SUPPLIER_BY_SUPPLIER, True, ANY_DEVICE, ASN1),
    "CS02bNOByNO": (CS02B_NO_BY_NO, True, ANY_DEVICE, ASN1),
    "CS02bACBByACB": (CS02B_ACB_BY_ACB, True, ANY_DEVICE, ASN1),
    "CS02bWPByWP": (CS02B_WAN_PROVIDER_BY_WAN_PROVIDER, True, ANY_DEVICE, ASN1),
    "CS02bTransCoSByTransCoS": (CS02B_TRANSCOS_BY_TRANSCOS, True, ANY_DEVICE, ASN1),
    "CS02bSupplierByTransCoS": (CS02B_SUPPLIER_BY_TRANSCOS, True, ANY_DEVICE, ASN1),
    "CS02bAnyExceptAbnormalRootByRecovery": (CS02B_ANY_EXCEPT_ABNORMAL_ROOT_BY_RECOVERY, True,
                                             ANY_DEVICE, ASN1),
    "CS02bAnyByContingency": (CS02B_ANY_BY_CONTINGENCY, True, ANY_DEVICE, ASN1),
    "CS02e": (CS02E, True, ANY_DEVICE, ASN1),
    "CS02g": (CS02G, True, ESME, DLMS),
    "CS03A1": (CS03A1, True, ANY_DEVICE, ASN1),
    "CS03A2": (CS03A2, True, ANY_DEVICE, ASN1),
    "CS03B": (CS03B, False, ANY_DEVICE, ASN1),
    "CS03C": (CS03C, True, ANY_DEVICE, ASN1),
    "CS04AC": (CS04AC, True, ANY_DEVICE, ASN1),
    "CS04B": (CS04B, False, ANY_DEVICE, ASN1),
    "CS06": (CS06, True, ANY_DEVICE, ASN1),
    "CS08": (CS08, False, ANY_DEVICE, ASN1),
}

# Prepayment top-ups (GBCS 14): their originator counter is the UTRN counter in bits 63..32
# with the low 32 bits zero (RTDS 2.2), a space apart from the supplier's other commands;
# replay is refused by the device's UTRN anti-replay record (utrn.UtrnAntiReplay), which
# accepts top-ups out of order within its window.
TOP_UP_CODES = (CS01A, CS01B)

# Critical use cases whose command the originator authenticates by the ACB MAC alone: the
# ACB replacing its own credentials (RTDS 8.5: command MAC'd, no signature; response signed)
MAC_AUTHORISED_CRITICAL = (CS02B_ACB_BY_ACB,)

# -- who may send what (GBCS 4.3.2 / DUIS eligible users as the device sees them) ------------
# The DCC forwards Other Users' and its own requests as the ACB; suppliers' and network
# operators' requests keep their own EUI as originator (RTDS originators, checked in tests).
_S = (ROLE_SUPPLIER,)
_SN = (ROLE_SUPPLIER, ROLE_NETWORK_OPERATOR)
_SNA = (ROLE_SUPPLIER, ROLE_NETWORK_OPERATOR, ROLE_ACB)
_SA = (ROLE_SUPPLIER, ROLE_ACB)
_N = (ROLE_NETWORK_OPERATOR,)
_A = (ROLE_ACB,)

SENDER_ROLES = {
    CCS01: _A, CCS02: _A, CCS07: _A, ECS26N: _A, ECS35D: _A, DBCH02: _A, DBCH05: _A,
    GCS31: _A, GCS36: _A, CS08: _A, CS03B: _SA, CS03C: _SA, CS04B: _SA,
    CS01A: _S, CS01B: _S,
    ECS01A: _S, ECS01B: _S, ECS02: _S, ECS04A: _S, ECS04B: _S, ECS07: _S, ECS08: _S,
    ECS10: _S, ECS12: _S, ECS15A: _S, ECS17B: _SNA, ECS18B: _SNA, ECS19: _SA, ECS20B: _SA,
    ECS20C: _SA, ECS21A: _SNA, ECS22A: _SNA, ECS22B: _SNA, ECS23: _SNA, ECS24: _SA,
    ECS25A1: _S, ECS25B: _N, ECS25R2: _N, ECS26B: _SNA, ECS26E: _SNA, ECS26F: _SNA,
    ECS26K: _SNA, ECS26L: _SA, ECS27: _SNA, ECS29A: _N, ECS29D: _N, ECS29E: _N, ECS34: _S,
    ECS35A: _SNA, ECS35G: _SNA, ECS37: _N, ECS39A: _S, ECS42: _S, ECS43: _S, ECS44: _S,
    ECS45: _SNA, ECS46D: _S, ECS52: _SNA, ECS61A: _SNA, ECS61C: _SNA, ECS61D: _SA,
    ECS62: _S, ECS70: _S, CS02G: _S,
    GCS01A: _S, GCS03: _S, GCS05: _S, GCS06: _S, GCS07: _S, GCS13A: _SA, GCS13C: _SA,
    GCS14: _SA, GCS15D: _SA, GCS16A: _SA, GCS17: _SA, GCS21A: _SA, GCS21B: _SA, GCS24A: _S,
    GCS25: _S, GCS28: _S, GCS32: _S, GCS33: _SA, GCS39: _S, GCS40B: _S, GCS44: _S,
    GCS60A: _SA, GCS61: _SA,
    CS02E: _S, CS03A1: _S, CS03A2: _S, CS04AC: _S, CS06: _S,
    # CS02b: the authorising party of each credentials replacement mode
    CS02B_ROOT_BY_SUPPLIER: _S,
    CS02B_ROOT_BY_WAN_PROVIDER: (ROLE_WAN_PROVIDER,),
    CS02B_SUPPLIER_BY_SUPPLIER: _S,
    CS02B_NO_BY_NO: _N,
    CS02B_ACB_BY_ACB: _A,
    CS02B_WAN_PROVIDER_BY_WAN_PROVIDER: (ROLE_WAN_PROVIDER,),
    CS02B_TRANSCOS_BY_TRANSCOS: (ROLE_TRANSITIONAL_COS,),
    CS02B_SUPPLIER_BY_TRANSCOS: (ROLE_TRANSITIONAL_COS,),
    CS02B_ANY_EXCEPT_ABNORMAL_ROOT_BY_RECOVERY: (ROLE_RECOVERY,),
    CS02B_ANY_BY_CONTINGENCY: (ROLE_ROOT,),
}

# The credentials replacement mode each CS02b message code carries (GBCS 13.3.2.x
# CredentialsReplacementMode, equal to the low byte of the message code)
CS02B_MODE = {}
for _code in CS02B_CODES:
    CS02B_MODE[_code] = _code & 0xFF
del _code

_BY_CODE = {}
for _name in USE_CASES:
    _BY_CODE.setdefault(USE_CASES[_name][0], _name)
del _name


def use_case(name):
    """(message code, critical, device type, payload kind); KeyError when unknown."""
    return USE_CASES[name]


def name_of(message_code):
    """A use-case name for a message code (one of them when several share it), or None."""
    return _BY_CODE.get(message_code)


def is_critical(message_code):
    """Critical per the use case (None when the code is not a known use case)."""
    name = _BY_CODE.get(message_code)
    if name is not None:
        return USE_CASES[name][1]
    return ALERT_MESSAGE_CRITICAL.get(message_code)


def sender_roles(message_code):
    """Roles whose commands with this code the device obeys; () when nobody's."""
    return SENDER_ROLES.get(message_code, ())
