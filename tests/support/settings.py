"""Settings for tests that run the pipeline or the daemon against fakes: a Kaltura that is
never reached and a work dir under the test's tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reach_vendor.worker.config import Settings, parse_settings


def offline_settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    """`sections` override these defaults key by key (as `tests.support.daemon.write_config`)."""
    data: dict[str, dict[str, Any]] = {
        "kaltura": {
            "service_url": "https://fake.invalid",
            "partner_id": 9001,
            "app_token": {"id": "1_test", "token": "not-a-real-token"},
        },
        "storage": {"work_dir": str(tmp_path / "work")},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_settings(data)
