"""Helpers the tests share: Kaltura emulator set-up, daemons, speech, fakes of remote services."""
