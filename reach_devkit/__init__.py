"""Development kit, not shipped in the wheel: the Kaltura emulator (a double of kaltura/server),
the demo and the helpers benches and tests share."""
