"""The `kaltura` section of the settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reach_vendor.common.config_base import SecretConfig, Section


class AppTokenConfig(SecretConfig):
    id: str = Field(min_length=1)
    hash_type: Literal["SHA1", "SHA256", "SHA512", "MD5"] = "SHA256"
    session_expiry_s: int = Field(default=86400, ge=60)

    def resolve_token(self) -> str:
        """Read the token from wherever it is kept; called once at start-up."""
        return self.resolve("kaltura.app_token")


class KalturaConfig(Section):
    service_url: str = Field(pattern=r"^https?://")
    partner_id: int = Field(gt=0)
    app_token: AppTokenConfig
    request_timeout_s: float = Field(default=30, gt=0)
    retries: int = Field(default=4, ge=0)
    """How often a transient failure (timeout, refused connection, 5xx) is retried."""
    page_size: int = Field(default=500, ge=1, le=500)
    """getJobs page size; Kaltura caps it at 500 (KalturaFilterPager)."""
    vendor_name: str = Field(default="reach-vendor", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    """Goes into the client tag Kaltura asks vendors for: <client>_<vendorName>-<partnerId>."""
