"""A Kaltura api_v3 emulator for tests and the demo: REACH vendor tasks over real HTTP.

It speaks the wire format the official clients use (service/action URLs, JSON, form and
multipart requests, XML `format=2` and JSON `format=1` answers, multirequest with
`{N:result:...}` references, signed KS with expiry) so the daemon under test runs exactly
the code it runs against kaltura.com.
"""

from reach_vendor.emulator.server import KalturaEmulator
from reach_vendor.emulator.wire import ApiError

__all__ = ["ApiError", "KalturaEmulator"]
