"""The HDLC data link of IEC 62056-46: `crc` (HCS/FCS), `frame` (format type 3),
`parameters` (SNRM/UA negotiation), `reader` (frames out of a byte stream) and
`station` (the secondary station the DLMS server sits on)."""
