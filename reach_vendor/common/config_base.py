"""The base of every settings section, secrets' sources and the one-line config error.

Vendor ops edit the YAML by hand, so every error must name the key that is wrong in one
line (the CLI exits 78, EX_CONFIG, which the systemd unit treats as "do not restart").
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

EX_CONFIG = 78


class ConfigError(Exception):
    """A configuration problem, phrased as one line naming the key."""


class Section(BaseModel):
    # No float setting means anything as inf or nan (`1e400`), and `gt=0` lets inf through.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SecretConfig(Section):
    """Where a secret is kept. Exactly one source; files and systemd credentials are the
    production choice (a secret inline in YAML ends up in backups and diffs)."""

    token: str | None = Field(default=None, repr=False)
    token_file: Path | None = None
    token_env: str | None = None
    token_credential: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    """Name of a systemd credential (`LoadCredential=`), read from $CREDENTIALS_DIRECTORY."""

    @model_validator(mode="after")
    def _one_source(self) -> SecretConfig:
        sources = [
            s for s in (self.token, self.token_file, self.token_env, self.token_credential) if s
        ]
        if len(sources) != 1:
            raise ValueError("give exactly one of token, token_file, token_env, token_credential")
        return self

    def resolve(self, key: str) -> str:
        """Read the secret from wherever it is kept; `key` names this section in errors."""
        if self.token:
            return self.token
        if self.token_credential:
            directory = os.environ.get("CREDENTIALS_DIRECTORY")
            if not directory:
                raise ConfigError(
                    f"{key}.token_credential: $CREDENTIALS_DIRECTORY is not set "
                    "(not started by systemd with LoadCredential=?)"
                )
            return read_secret_file(
                Path(directory) / self.token_credential, f"{key}.token_credential"
            )
        if self.token_file:
            return read_secret_file(self.token_file, f"{key}.token_file")
        assert self.token_env
        value = os.environ.get(self.token_env, "").strip()
        if not value:
            raise ConfigError(f"{key}.token_env: environment variable {self.token_env} is not set")
        return value


def read_secret_file(path: Path, key: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{key}: {path} is empty")
    return value
