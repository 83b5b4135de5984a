"""What a task asks for, as the pipeline sees it: labels, languages, features."""

from __future__ import annotations

import pytest

from reach_vendor.domain.task_spec import (
    SERVICE_FEATURES,
    feature_name,
    language_code,
    pick_label_addition,
)


@pytest.mark.parametrize(
    ("service_type", "expected"),
    [(2, "(Auto Generated)"), (1, "(Professional)"), (3, "(Hybrid)"), (9, "")],
)
def test_label_addition_follows_the_service_type(service_type: int, expected: str) -> None:
    labels = ("(Auto Generated)", "(Professional)", "(Hybrid)")
    assert pick_label_addition(service_type, *labels) == expected


def test_missing_label_addition_is_empty() -> None:
    assert pick_label_addition(1, "(Auto Generated)", None, "") == ""


def test_feature_names_match_the_client_enum() -> None:
    assert SERVICE_FEATURES["CAPTIONS"] == 1 and SERVICE_FEATURES["ALIGNMENT"] == 3
    assert feature_name(2) == "TRANSLATION" and feature_name(99) == "#99"


def test_language_codes() -> None:
    assert language_code("English (British)") == "en-GB"
    assert language_code(" French ") == "fr"
