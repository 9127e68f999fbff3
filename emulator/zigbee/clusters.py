"""ZigBee Smart Energy clusters for the GB HAN, declared in zigpy's own style.

zigpy 2.4 defines only Metering (0x0702) among the SE clusters; Price, Messaging,
Tunneling, Prepayment and Key Establishment are empty stubs. Each class below subclasses
zigpy's stub, so `Cluster.__init_subclass__` puts it in zigpy's cluster registry in the
stub's place (`zigpy.zcl.Cluster._registry[cluster_id]`): every endpoint zigpy builds
from then on gets these definitions, and every frame is serialised and parsed by zigpy's
types. Importing this module is the registration.

Attribute ids, command ids and field types: ZigBee Smart Energy Standard 1.4
(07-5356-21), Annex D: Price D.4, Metering D.3, Messaging D.5, Tunneling D.6,
Prepayment D.7, Key Establishment C.3.1 (the same clusters are ZCL 7 chapter 10). Field
names follow zigpy's snake_case and, for ConsumerTopUp, `emulator/codec/gbz.py` and
`firmware/zcl/se.py`, so the three readers agree.
"""

from __future__ import annotations

from typing import Final

import zigpy.types as t
from zigpy.zcl import Cluster
from zigpy.zcl.clusters import smartenergy as zse
from zigpy.zcl import foundation
from zigpy.zcl.foundation import BaseAttributeDefs, BaseCommandDefs, ZCLAttributeDef, ZCLCommandDef

SE_PROFILE = 0x0109               # ZigBee Smart Energy application profile id
GBP = 826                         # ISO 4217 currency code, Pound sterling

# -- shared types ------------------------------------------------------------------------


class TunnelProtocol(t.enum8):
    """ZSE 1.4 D.6.2.4.1.2 ProtocolID (Table D-127)."""

    DLMS_COSEM = 0
    IEC_61107 = 1
    ANSI_C12 = 2
    M_BUS = 3
    SML = 4
    ClimateTalk = 5
    GB_HRGP = 6
    IPv4 = 7
    IPv6 = 8
    Manufacturer = 200


class TunnelStatus(t.enum8):
    """ZSE 1.4 D.6.2.5.1.2 TunnelStatus (Table D-129)."""

    Success = 0x00
    Busy = 0x01
    No_More_Tunnel_IDs = 0x02
    Protocol_Not_Supported = 0x03
    Flow_Control_Not_Supported = 0x04


class TransferDataStatus(t.enum8):
    """ZSE 1.4 D.6.2.4.4.2 TransferDataStatus (Table D-128)."""

    No_Such_Tunnel = 0x00
    Wrong_Device = 0x01
    Data_Overflow = 0x02


class OriginatingDevice(t.enum8):
    """ZSE 1.4 D.7.2.3.5.1 (Table D-163): where a top-up code was entered."""

    Energy_Service_Interface = 0x00
    Meter = 0x01
    In_Home_Display = 0x02


class TopUpResult(t.enum8):
    """ZSE 1.4 D.7.2.4.4.1 ConsumerTopUpResponse ResultType (Table D-176)."""

    Accepted = 0x00
    Rejected_Invalid = 0x01
    Rejected_Duplicate = 0x02
    Rejected_Error = 0x03
    Rejected_Max_Credit = 0x04
    Rejected_Keypad_Lock = 0x05
    Rejected_Too_Large = 0x06
    Accepted_Supply_Enabled = 0x10
    Accepted_Supply_Disabled = 0x11
    Accepted_Supply_Armed = 0x12


class MessageControl(t.bitmap8):
    """ZSE 1.4 D.5.2.3.1.1.1 Message Control field (Table D-110)."""

    Transmission_Both = 0x01          # bits 0-1: 0 normal, 1 normal+anonymous, 2 anonymous
    Transmission_Anonymous = 0x02
    Importance_Medium = 0x04          # bits 2-3: 0 low, 1 medium, 2 high, 3 critical
    Importance_High = 0x08
    Enhanced_Confirmation = 0x20
    Confirmation_Required = 0x80


class KeyEstablishmentSuite(t.bitmap16):
    """ZSE 1.4 C.3.1.2.2.1 KeyEstablishmentSuite: crypto suite 1 (K-163), 2 (K-283)."""

    Crypto_Suite_1 = 0x0001
    Crypto_Suite_2 = 0x0002


# -- Price (0x0700) ---------------------------------------------------------------------


class Price(zse.Price):
    """ZSE 1.4 D.4. Attributes D.4.2.2: Tier labels 0x00xx, Block thresholds 0x01xx,
    Block period 0x02xx, Commodity 0x03xx, Block price information 0x04xx
    (TierNBlockMPrice = 0x0400 + 0x10*N + M - 1), Tariff information 0x06xx, Billing
    0x07xx."""

    TunnelProtocol: Final = TunnelProtocol

    class AttributeDefs(BaseAttributeDefs):
        tier1_price_label: Final = ZCLAttributeDef(id=0x0000, type=t.LVBytes, access="rw")
        tier2_price_label: Final = ZCLAttributeDef(id=0x0001, type=t.LVBytes, access="rw")
        tier3_price_label: Final = ZCLAttributeDef(id=0x0002, type=t.LVBytes, access="rw")
        tier4_price_label: Final = ZCLAttributeDef(id=0x0003, type=t.LVBytes, access="rw")
        block1_threshold: Final = ZCLAttributeDef(id=0x0100, type=t.uint48_t, access="r")
        block2_threshold: Final = ZCLAttributeDef(id=0x0101, type=t.uint48_t, access="r")
        block3_threshold: Final = ZCLAttributeDef(id=0x0102, type=t.uint48_t, access="r")
        start_of_block_period: Final = ZCLAttributeDef(id=0x0200, type=t.UTCTime, access="r")
        block_period_duration: Final = ZCLAttributeDef(id=0x0201, type=t.uint24_t, access="r")
        threshold_multiplier: Final = ZCLAttributeDef(id=0x0202, type=t.uint24_t, access="r")
        threshold_divisor: Final = ZCLAttributeDef(id=0x0203, type=t.uint24_t, access="r")
        commodity_type: Final = ZCLAttributeDef(id=0x0300, type=t.enum8, access="r")
        standing_charge: Final = ZCLAttributeDef(id=0x0301, type=t.uint32_t, access="r")
        conversion_factor: Final = ZCLAttributeDef(id=0x0302, type=t.uint32_t, access="r")
        conversion_factor_trailing_digit: Final = ZCLAttributeDef(
            id=0x0303, type=t.bitmap8, access="r")
        calorific_value: Final = ZCLAttributeDef(id=0x0304, type=t.uint32_t, access="r")
        calorific_value_unit: Final = ZCLAttributeDef(id=0x0305, type=t.enum8, access="r")
        calorific_value_trailing_digit: Final = ZCLAttributeDef(
            id=0x0306, type=t.bitmap8, access="r")
        no_tier_block1_price: Final = ZCLAttributeDef(id=0x0400, type=t.uint32_t, access="r")
        no_tier_block2_price: Final = ZCLAttributeDef(id=0x0401, type=t.uint32_t, access="r")
        no_tier_block3_price: Final = ZCLAttributeDef(id=0x0402, type=t.uint32_t, access="r")
        no_tier_block4_price: Final = ZCLAttributeDef(id=0x0403, type=t.uint32_t, access="r")
        tier1_block1_price: Final = ZCLAttributeDef(id=0x0410, type=t.uint32_t, access="r")
        tier2_block1_price: Final = ZCLAttributeDef(id=0x0420, type=t.uint32_t, access="r")
        tier3_block1_price: Final = ZCLAttributeDef(id=0x0430, type=t.uint32_t, access="r")
        tier4_block1_price: Final = ZCLAttributeDef(id=0x0440, type=t.uint32_t, access="r")
        tariff_label: Final = ZCLAttributeDef(id=0x0610, type=t.LVBytes, access="rw")
        number_of_price_tiers_in_use: Final = ZCLAttributeDef(
            id=0x0611, type=t.uint8_t, access="rw")
        number_of_block_thresholds_in_use: Final = ZCLAttributeDef(
            id=0x0612, type=t.uint8_t, access="rw")
        tier_block_mode: Final = ZCLAttributeDef(id=0x0613, type=t.enum8, access="rw")
        unit_of_measure: Final = ZCLAttributeDef(id=0x0615, type=t.enum8, access="r")
        currency: Final = ZCLAttributeDef(id=0x0616, type=t.uint16_t, access="r")
        price_trailing_digit: Final = ZCLAttributeDef(id=0x0617, type=t.bitmap8, access="r")
        tariff_resolution_period: Final = ZCLAttributeDef(id=0x0619, type=t.enum8, access="r")
        current_billing_period_start: Final = ZCLAttributeDef(
            id=0x0700, type=t.UTCTime, access="r")
        current_billing_period_duration: Final = ZCLAttributeDef(
            id=0x0701, type=t.uint24_t, access="r")
        last_billing_period_start: Final = ZCLAttributeDef(id=0x0702, type=t.UTCTime, access="r")
        last_billing_period_duration: Final = ZCLAttributeDef(
            id=0x0703, type=t.uint24_t, access="r")
        last_billing_period_consolidated_bill: Final = ZCLAttributeDef(
            id=0x0704, type=t.uint32_t, access="r")

    class ServerCommandDefs(BaseCommandDefs):
        # D.4.2.3.1 GetCurrentPrice: bit 0 of the options, requestor Rx-on-when-idle
        get_current_price: Final = ZCLCommandDef(
            id=0x00, schema={"command_options": t.bitmap8})
        # D.4.2.3.2 GetScheduledPrices
        get_scheduled_prices: Final = ZCLCommandDef(
            id=0x01, schema={"start_time": t.UTCTime, "number_of_events": t.uint8_t})
        # D.4.2.3.3 PriceAcknowledgement
        price_acknowledgement: Final = ZCLCommandDef(
            id=0x02, schema={"provider_id": t.uint32_t, "issuer_event_id": t.uint32_t,
                             "price_ack_time": t.UTCTime, "control": t.bitmap8})
        # D.4.2.3.7 GetTariffInformation
        get_tariff_information: Final = ZCLCommandDef(
            id=0x06, schema={"earliest_start_time": t.UTCTime, "min_issuer_event_id":
                             t.uint32_t, "number_of_commands": t.uint8_t,
                             "tariff_type": t.bitmap8})

    class ClientCommandDefs(BaseCommandDefs):
        # D.4.2.4.1 PublishPrice: the fields after `price` are optional (Table D-98)
        publish_price: Final = ZCLCommandDef(
            id=0x00,
            schema={
                "provider_id": t.uint32_t,
                "rate_label": t.LVBytes,
                "issuer_event_id": t.uint32_t,
                "current_time": t.UTCTime,
                "unit_of_measure": t.enum8,
                "currency": t.uint16_t,
                "price_trailing_digit_and_price_tier": t.bitmap8,
                "number_of_price_tiers_and_register_tier": t.bitmap8,
                "start_time": t.UTCTime,
                "duration_in_minutes": t.uint16_t,
                "price": t.uint32_t,
                "price_ratio?": t.uint8_t,
                "generation_price?": t.uint32_t,
                "generation_price_ratio?": t.uint8_t,
                "alternate_cost_delivered?": t.uint32_t,
                "alternate_cost_unit?": t.enum8,
                "alternate_cost_trailing_digit?": t.bitmap8,
                "number_of_block_thresholds?": t.uint8_t,
                "price_control?": t.bitmap8,
            },
        )


# -- Metering (0x0702): what zigpy's definition lacks for GB ------------------------------

def _metering_additions():
    """ZSE 1.4 D.3.2.2: attributes GBCS and GB IHDs read that zigpy 2.4 does not define:
    PreviousDayN (0x0420 + 2(N-2)), week (0x0430 + 2W) and month (0x0440 + 2M)
    consumption, and the Block Information (Delivered) set (0x0700 + 0x10*tier + block-1,
    tiers 0 (no tier) to 7, blocks 1 to 4: the set GBCS names for the ESME)."""
    defs = {}
    for day in range(2, 9):
        defs["previous_day%d_consumption_delivered" % day] = ZCLAttributeDef(
            id=0x0420 + 2 * (day - 2), type=t.uint24_t, access="r")
    for week in range(6):
        name = "current_week" if week == 0 else "previous_week%s" % ("" if week == 1 else week)
        defs[name + "_consumption_delivered"] = ZCLAttributeDef(
            id=0x0430 + 2 * week, type=t.uint24_t, access="r")
    for month in range(14):
        name = "current_month" if month == 0 else "previous_month%s" % (
            "" if month == 1 else month)
        defs[name + "_consumption_delivered"] = ZCLAttributeDef(
            id=0x0440 + 2 * month, type=t.uint32_t, access="r")
    for tier in range(8):
        for block in range(1, 5):
            name = ("current_no_tier_block%d_summ_delivered" % block if tier == 0
                    else "current_tier%d_block%d_summ_delivered" % (tier, block))
            defs[name] = ZCLAttributeDef(id=0x0700 + 0x10 * tier + block - 1,
                                         type=t.uint48_t, access="r")
    return defs


_MeteringAttributeDefs = type(
    "AttributeDefs", (zse.Metering.AttributeDefs,), dict(_metering_additions()))


class Metering(zse.Metering):
    """zigpy's Metering with the GB additions above (same id 0x0702: replaces it)."""

    AttributeDefs = _MeteringAttributeDefs
    ServerCommandDefs = zse.Metering.ServerCommandDefs
    ClientCommandDefs = zse.Metering.ClientCommandDefs


# -- Messaging (0x0703) -----------------------------------------------------------------


class Messaging(zse.Messaging):
    """ZSE 1.4 D.5: no attributes; the server sends messages, the client confirms."""

    MessageControl: Final = MessageControl

    class AttributeDefs(BaseAttributeDefs):
        pass

    class ServerCommandDefs(BaseCommandDefs):
        # D.5.2.4.1 GetLastMessage
        get_last_message: Final = ZCLCommandDef(id=0x00, schema={})
        # D.5.2.4.2 MessageConfirmation (control and response optional since SE 1.2)
        message_confirmation: Final = ZCLCommandDef(
            id=0x01,
            schema={"message_id": t.uint32_t, "confirmation_time": t.UTCTime,
                    "message_confirmation_control?": t.bitmap8,
                    "message_response?": t.LVBytes},
        )
        # D.5.2.4.3 GetMessageCancellation
        get_message_cancellation: Final = ZCLCommandDef(
            id=0x02, schema={"earliest_implementation_time": t.UTCTime})

    class ClientCommandDefs(BaseCommandDefs):
        # D.5.2.3.1 DisplayMessage
        display_message: Final = ZCLCommandDef(
            id=0x00,
            schema={"message_id": t.uint32_t, "message_control": MessageControl,
                    "start_time": t.UTCTime, "duration_in_minutes": t.uint16_t,
                    "message": t.CharacterString,
                    "extended_message_control?": t.bitmap8},
        )
        # D.5.2.3.2 CancelMessage
        cancel_message: Final = ZCLCommandDef(
            id=0x01, schema={"message_id": t.uint32_t, "message_control": MessageControl})
        # D.5.2.3.3 DisplayProtectedMessage: the DisplayMessage payload
        display_protected_message: Final = ZCLCommandDef(
            id=0x02,
            schema={"message_id": t.uint32_t, "message_control": MessageControl,
                    "start_time": t.UTCTime, "duration_in_minutes": t.uint16_t,
                    "message": t.CharacterString,
                    "extended_message_control?": t.bitmap8},
        )
        # D.5.2.3.4 CancelAllMessages
        cancel_all_messages: Final = ZCLCommandDef(
            id=0x03, schema={"implementation_date_time": t.UTCTime})


# -- Tunneling (0x0704) -----------------------------------------------------------------


class Tunneling(zse.Tunneling):
    """ZSE 1.4 D.6. TransferData's data runs to the end of the frame (no length
    prefix); the tunnel carries a stream (GB-HRGP: protocol 6, firmware/han/tunnel.py)."""

    TunnelProtocol: Final = TunnelProtocol
    TunnelStatus: Final = TunnelStatus
    TransferDataStatus: Final = TransferDataStatus

    class AttributeDefs(BaseAttributeDefs):
        # D.6.2.2: seconds an idle tunnel stays open (minimum 1)
        close_tunnel_timeout: Final = ZCLAttributeDef(
            id=0x0000, type=t.uint16_t, access="r", mandatory=True)

    class ServerCommandDefs(BaseCommandDefs):
        # D.6.2.4.1 RequestTunnel
        request_tunnel: Final = ZCLCommandDef(
            id=0x00,
            schema={"protocol_id": TunnelProtocol, "manufacturer_code": t.uint16_t,
                    "flow_control_support": t.Bool,
                    "maximum_incoming_transfer_size": t.uint16_t},
        )
        # D.6.2.4.2 CloseTunnel
        close_tunnel: Final = ZCLCommandDef(
            id=0x01, schema={"tunnel_id": t.uint16_t})
        # D.6.2.4.3 TransferData (client to server)
        transfer_data: Final = ZCLCommandDef(
            id=0x02, schema={"tunnel_id": t.uint16_t, "data": t.Bytes})
        # D.6.2.4.4 TransferDataError (client to server)
        transfer_data_error: Final = ZCLCommandDef(
            id=0x03, schema={"tunnel_id": t.uint16_t,
                             "transfer_data_status": TransferDataStatus})
        # D.6.2.4.5 AckTransferData, D.6.2.4.6 ReadyData (flow control)
        ack_transfer_data: Final = ZCLCommandDef(
            id=0x04, schema={"tunnel_id": t.uint16_t, "number_of_bytes_left": t.uint16_t})
        ready_data: Final = ZCLCommandDef(
            id=0x05, schema={"tunnel_id": t.uint16_t,
                             "number_of_octets_left": t.uint16_t})
        # D.6.2.4.7 GetSupportedTunnelProtocols
        get_supported_tunnel_protocols: Final = ZCLCommandDef(
            id=0x06, schema={"protocol_offset": t.uint8_t})

    class ClientCommandDefs(BaseCommandDefs):
        # D.6.2.5.1 RequestTunnelResponse
        request_tunnel_response: Final = ZCLCommandDef(
            id=0x00,
            schema={"tunnel_id": t.uint16_t, "tunnel_status": TunnelStatus,
                    "maximum_incoming_transfer_size": t.uint16_t},
        )
        # D.6.2.5.2 TransferData (server to client)
        transfer_data: Final = ZCLCommandDef(
            id=0x01, schema={"tunnel_id": t.uint16_t, "data": t.Bytes})
        # D.6.2.5.3 TransferDataError (server to client)
        transfer_data_error: Final = ZCLCommandDef(
            id=0x02, schema={"tunnel_id": t.uint16_t,
                             "transfer_data_status": TransferDataStatus})
        ack_transfer_data: Final = ZCLCommandDef(
            id=0x03, schema={"tunnel_id": t.uint16_t, "number_of_bytes_left": t.uint16_t})
        ready_data: Final = ZCLCommandDef(
            id=0x04, schema={"tunnel_id": t.uint16_t,
                             "number_of_octets_left": t.uint16_t})
        # D.6.2.5.6 TunnelClosureNotification
        tunnel_closure_notification: Final = ZCLCommandDef(
            id=0x06, schema={"tunnel_id": t.uint16_t})


# -- Prepayment (0x0705) ----------------------------------------------------------------


class Prepayment(zse.Prepayment):
    """ZSE 1.4 D.7: the Prepayment Information set an IHD shows (D.7.2.2.1), the
    Top-up set's most recent entry (D.7.2.2.2), ConsumerTopUp and its response."""

    OriginatingDevice: Final = OriginatingDevice
    TopUpResult: Final = TopUpResult

    class AttributeDefs(BaseAttributeDefs):
        payment_control_configuration: Final = ZCLAttributeDef(
            id=0x0000, type=t.bitmap16, access="r", mandatory=True)
        credit_remaining: Final = ZCLAttributeDef(id=0x0001, type=t.int32s, access="r")
        emergency_credit_remaining: Final = ZCLAttributeDef(
            id=0x0002, type=t.int32s, access="r")
        credit_status: Final = ZCLAttributeDef(id=0x0003, type=t.bitmap8, access="r")
        credit_remaining_timestamp: Final = ZCLAttributeDef(
            id=0x0004, type=t.UTCTime, access="r")
        accumulated_debt: Final = ZCLAttributeDef(id=0x0005, type=t.int32s, access="r")
        overall_debt_cap: Final = ZCLAttributeDef(id=0x0006, type=t.int32s, access="r")
        emergency_credit_limit_allowance: Final = ZCLAttributeDef(
            id=0x0010, type=t.uint32_t, access="r")
        emergency_credit_threshold: Final = ZCLAttributeDef(
            id=0x0011, type=t.uint32_t, access="r")
        total_credit_added: Final = ZCLAttributeDef(id=0x0020, type=t.uint48_t, access="r")
        max_credit_limit: Final = ZCLAttributeDef(id=0x0021, type=t.uint32_t, access="r")
        max_credit_per_top_up: Final = ZCLAttributeDef(id=0x0022, type=t.uint32_t, access="r")
        friendly_credit_warning: Final = ZCLAttributeDef(id=0x0030, type=t.uint8_t, access="r")
        low_credit_warning_level: Final = ZCLAttributeDef(
            id=0x0031, type=t.uint32_t, access="r")
        ihd_low_credit_warning_level: Final = ZCLAttributeDef(
            id=0x0032, type=t.uint32_t, access="rw")
        cut_off_value: Final = ZCLAttributeDef(id=0x0040, type=t.int32s, access="r")
        top_up_date_time_1: Final = ZCLAttributeDef(id=0x0100, type=t.UTCTime, access="r")
        top_up_amount_1: Final = ZCLAttributeDef(id=0x0101, type=t.int32s, access="r")
        originating_device_1: Final = ZCLAttributeDef(
            id=0x0102, type=OriginatingDevice, access="r")
        top_up_code_1: Final = ZCLAttributeDef(id=0x0103, type=t.LVBytes, access="r")

    class ServerCommandDefs(BaseCommandDefs):
        # D.7.2.3.1 SelectAvailableEmergencyCredit
        select_available_emergency_credit: Final = ZCLCommandDef(
            id=0x00, schema={"command_issue_date_time": t.UTCTime,
                             "originating_device": OriginatingDevice})
        # D.7.2.3.5 ConsumerTopUp
        consumer_top_up: Final = ZCLCommandDef(
            id=0x04, schema={"originating_device": t.uint8_t, "topup_code": t.LVBytes})

    class ClientCommandDefs(BaseCommandDefs):
        # D.7.2.4.4 ConsumerTopUpResponse
        consumer_top_up_response: Final = ZCLCommandDef(
            id=0x03,
            schema={"result_type": t.uint8_t, "top_up_value": t.int32s,
                    "source_of_top_up": t.uint8_t, "credit_remaining": t.int32s},
        )


# -- Key Establishment (0x0800) ---------------------------------------------------------


class KeyEstablishment(zse.KeyEstablishment):
    """ZSE 1.4 C.3.1 (CBKE). Declared so frames decode; the hub does not run CBKE over
    this layer (the NCP holds the keys: bellows exposes only the raw EZSP commands)."""

    KeyEstablishmentSuite: Final = KeyEstablishmentSuite

    class AttributeDefs(BaseAttributeDefs):
        key_establishment_suite: Final = ZCLAttributeDef(
            id=0x0000, type=KeyEstablishmentSuite, access="r", mandatory=True)

    class ServerCommandDefs(BaseCommandDefs):
        # C.3.1.2.3.1 InitiateKeyEstablishmentRequest: the identity is the certificate
        initiate_key_establishment_request: Final = ZCLCommandDef(
            id=0x00,
            schema={"key_establishment_suite": KeyEstablishmentSuite,
                    "ephemeral_data_generate_time": t.uint8_t,
                    "confirm_key_generate_time": t.uint8_t, "identity": t.Bytes},
        )
        ephemeral_data_request: Final = ZCLCommandDef(
            id=0x01, schema={"ephemeral_data": t.Bytes})
        confirm_key_data_request: Final = ZCLCommandDef(
            id=0x02, schema={"secure_message_authentication_code": t.FixedList[t.uint8_t, 16]})
        terminate_key_establishment: Final = ZCLCommandDef(
            id=0x03, schema={"status_code": t.enum8, "wait_time": t.uint8_t,
                             "key_establishment_suite": KeyEstablishmentSuite})

    class ClientCommandDefs(BaseCommandDefs):
        initiate_key_establishment_response: Final = ZCLCommandDef(
            id=0x00,
            schema={"requested_key_establishment_suite": KeyEstablishmentSuite,
                    "ephemeral_data_generate_time": t.uint8_t,
                    "confirm_key_generate_time": t.uint8_t, "identity": t.Bytes},
        )
        ephemeral_data_response: Final = ZCLCommandDef(
            id=0x01, schema={"ephemeral_data": t.Bytes})
        confirm_key_data_response: Final = ZCLCommandDef(
            id=0x02, schema={"secure_message_authentication_code": t.FixedList[t.uint8_t, 16]})
        terminate_key_establishment: Final = ZCLCommandDef(
            id=0x03, schema={"status_code": t.enum8, "wait_time": t.uint8_t,
                             "key_establishment_suite": KeyEstablishmentSuite})


SE_CLUSTERS = (Price, Metering, Messaging, Tunneling, Prepayment, KeyEstablishment)


def parse_frame(cluster, data: bytes):
    """(ZCLHeader, command) of one ZCL frame for `cluster`, by zigpy's definitions: the
    steps of `zigpy.zcl.Cluster.deserialize`, which needs a device endpoint to log with.
    The command is the payload bytes when zigpy knows no such command; a payload that
    does not parse, or a reserved frame type, raises ValueError (zigpy's errors
    wrapped)."""
    hdr, rest = foundation.ZCLHeader.deserialize(data)
    if hdr.frame_control.frame_type not in (foundation.FrameType.GLOBAL_COMMAND,
                                            foundation.FrameType.CLUSTER_COMMAND):
        raise ValueError("ZCL frame type %d is reserved (ZCL r7 2.4.1.1.1)"
                         % hdr.frame_control.frame_type)
    if hdr.frame_control.frame_type == foundation.FrameType.CLUSTER_COMMAND:
        table = (cluster.client_commands if hdr.direction == foundation.Direction.Server_to_Client
                 else cluster.server_commands)
        definition = table.get(hdr.command_id)
    else:
        # GeneralCommand makes a pseudo-member of any id, which GENERAL_COMMANDS lacks
        definition = foundation.GENERAL_COMMANDS.get(foundation.GeneralCommand(hdr.command_id))
    if definition is None:
        return hdr, bytes(rest)
    try:
        command, _ = definition.schema.deserialize(rest)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise ValueError("ZCL %s payload: %s" % (definition.name, e)) from e
    return hdr, command
