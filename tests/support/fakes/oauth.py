"""OAuth2 client-credentials token issuing shared by the SmartDocumentor and Alteryx fakes."""

from __future__ import annotations

import secrets
import time

from tests.support.fakes.base import Request, Response, json_response


class TokenIssuer:
    def __init__(self, client_id: str, client_secret: str, ttl_s: float = 3600) -> None:
        self.client_id, self.client_secret, self.ttl_s = client_id, client_secret, ttl_s
        self.tokens: dict[str, float] = {}
        self.issued = 0

    def issue(self, req: Request) -> Response:
        form = req.form()
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, 400)
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            # RFC 6749 5.2: invalid_client is a 400 unless the client used HTTP Basic auth;
            # seed-systems-notes.md (SmartDocumentor token) names invalid_client.
            return json_response({"error": "invalid_client"}, 400)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.ttl_s
        self.issued += 1
        return json_response(
            {"access_token": token, "expires_in": int(self.ttl_s), "token_type": "Bearer"}
        )

    def valid(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        return auth.startswith("Bearer ") and self.tokens.get(token, 0) > time.monotonic()

    def revoke_all(self) -> None:
        self.tokens.clear()
