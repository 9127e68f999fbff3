"""A virtual EZSP NCP (ASH + EZSP on a pty) on a shared virtual 802.15.4 medium."""
