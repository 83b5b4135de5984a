"""reach-vendor: a Kaltura REACH vendor daemon."""

__version__ = "0.1.0"
