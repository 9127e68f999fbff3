"""The home area network in software: a virtual medium for GB-HRGP tunnel frames
(`virtual.VirtualHan`) and adapters that put device ports on it (`nodes`). Real ZigBee
(zigpy/bellows) is the next layer down and keeps the same node interface."""
