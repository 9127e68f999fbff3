"""A minimal ZigBee Cluster Library codec for the GSME's GBZ payloads (firmware side).

`frame` is the ZCL header and the general (profile-wide) commands, `types` the ZCL data
types (little-endian, ZCL r7 2.6.2), `se` the Smart Energy commands the GSME serves
(Metering, Prepayment). ZigBee Smart Energy 1.4 is the source of each layout.
"""
