"""Everything that talks to Kaltura."""
