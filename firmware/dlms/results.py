"""Result codes of xDLMS services (DLMS UA 1000-2 Green Book, 11.x ASN.1 of xDLMS).

One source of truth: COSEM objects raise these, the server encodes them, the host
codecs and the `decode` command name them.
"""

# Data-Access-Result ::= ENUMERATED (Green Book, xDLMS ASN.1 "Data-Access-Result")
SUCCESS = 0
HARDWARE_FAULT = 1
TEMPORARY_FAILURE = 2
READ_WRITE_DENIED = 3
OBJECT_UNDEFINED = 4
OBJECT_CLASS_INCONSISTENT = 9
OBJECT_UNAVAILABLE = 11
TYPE_UNMATCHED = 12
SCOPE_OF_ACCESS_VIOLATED = 13
DATA_BLOCK_UNAVAILABLE = 14
LONG_GET_ABORTED = 15
NO_LONG_GET_IN_PROGRESS = 16
LONG_SET_ABORTED = 17
NO_LONG_SET_IN_PROGRESS = 18
DATA_BLOCK_NUMBER_INVALID = 19
OTHER_REASON = 250

DATA_ACCESS_RESULT_NAMES = {
    SUCCESS: "success",
    HARDWARE_FAULT: "hardware-fault",
    TEMPORARY_FAILURE: "temporary-failure",
    READ_WRITE_DENIED: "read-write-denied",
    OBJECT_UNDEFINED: "object-undefined",
    OBJECT_CLASS_INCONSISTENT: "object-class-inconsistent",
    OBJECT_UNAVAILABLE: "object-unavailable",
    TYPE_UNMATCHED: "type-unmatched",
    SCOPE_OF_ACCESS_VIOLATED: "scope-of-access-violated",
    DATA_BLOCK_UNAVAILABLE: "data-block-unavailable",
    LONG_GET_ABORTED: "long-get-aborted",
    NO_LONG_GET_IN_PROGRESS: "no-long-get-in-progress",
    LONG_SET_ABORTED: "long-set-aborted",
    NO_LONG_SET_IN_PROGRESS: "no-long-set-in-progress",
    DATA_BLOCK_NUMBER_INVALID: "data-block-number-invalid",
    OTHER_REASON: "other-reason",
}

# Action-Result ::= ENUMERATED (Green Book, xDLMS ASN.1 "Action-Result").
# Values 0..14 and 250 coincide with Data-Access-Result; 15 and 16 differ in meaning.
ACTION_SUCCESS = 0
ACTION_HARDWARE_FAULT = 1
ACTION_TEMPORARY_FAILURE = 2
ACTION_READ_WRITE_DENIED = 3
ACTION_OBJECT_UNDEFINED = 4
ACTION_OBJECT_CLASS_INCONSISTENT = 9
ACTION_OBJECT_UNAVAILABLE = 11
ACTION_TYPE_UNMATCHED = 12
ACTION_SCOPE_OF_ACCESS_VIOLATED = 13
ACTION_DATA_BLOCK_UNAVAILABLE = 14
ACTION_LONG_ACTION_ABORTED = 15
ACTION_NO_LONG_ACTION_IN_PROGRESS = 16
ACTION_OTHER_REASON = 250

ACTION_RESULT_NAMES = {
    ACTION_SUCCESS: "success",
    ACTION_HARDWARE_FAULT: "hardware-fault",
    ACTION_TEMPORARY_FAILURE: "temporary-failure",
    ACTION_READ_WRITE_DENIED: "read-write-denied",
    ACTION_OBJECT_UNDEFINED: "object-undefined",
    ACTION_OBJECT_CLASS_INCONSISTENT: "object-class-inconsistent",
    ACTION_OBJECT_UNAVAILABLE: "object-unavailable",
    ACTION_TYPE_UNMATCHED: "type-unmatched",
    ACTION_SCOPE_OF_ACCESS_VIOLATED: "scope-of-access-violated",
    ACTION_DATA_BLOCK_UNAVAILABLE: "data-block-unavailable",
    ACTION_LONG_ACTION_ABORTED: "long-action-aborted",
    ACTION_NO_LONG_ACTION_IN_PROGRESS: "no-long-action-in-progress",
    ACTION_OTHER_REASON: "other-reason",
}

# ExceptionResponse ::= SEQUENCE { state-error [0] IMPLICIT ENUMERATED,
#   service-error [1] CHOICE } (Green Book, xDLMS ASN.1 "ExceptionResponse").
# Encoded as D8 <state-error> <service-error choice> [uint32 for invocation-counter-error].
STATE_ERROR_SERVICE_NOT_ALLOWED = 1
STATE_ERROR_SERVICE_UNKNOWN = 2

STATE_ERROR_NAMES = {
    STATE_ERROR_SERVICE_NOT_ALLOWED: "service-not-allowed",
    STATE_ERROR_SERVICE_UNKNOWN: "service-unknown",
}

SERVICE_ERROR_OPERATION_NOT_POSSIBLE = 1
SERVICE_ERROR_SERVICE_NOT_SUPPORTED = 2
SERVICE_ERROR_OTHER_REASON = 3
SERVICE_ERROR_PDU_TOO_LONG = 4
SERVICE_ERROR_DECIPHERING_ERROR = 5
SERVICE_ERROR_INVOCATION_COUNTER_ERROR = 6  # followed by the expected counter, Unsigned32

SERVICE_ERROR_NAMES = {
    SERVICE_ERROR_OPERATION_NOT_POSSIBLE: "operation-not-possible",
    SERVICE_ERROR_SERVICE_NOT_SUPPORTED: "service-not-supported",
    SERVICE_ERROR_OTHER_REASON: "other-reason",
    SERVICE_ERROR_PDU_TOO_LONG: "pdu-too-long",
    SERVICE_ERROR_DECIPHERING_ERROR: "deciphering-error",
    SERVICE_ERROR_INVOCATION_COUNTER_ERROR: "invocation-counter-error",
}
