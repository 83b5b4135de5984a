"""Local fakes of the remote services, each a real HTTP server on 127.0.0.1 speaking the
wire format of the service's documentation (tests/fakes/<service>.py)."""
