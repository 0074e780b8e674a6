"""From scenario and profile to the Locust child's plan: identities, headers, keys, statuses."""

from __future__ import annotations

import ipaddress
import os

import pytest

from omnidrill.errors import UsageError
from omnidrill.load.models import LoadScenario
from omnidrill.load.plan import TEST_NET, as_target, build_plan, client_addresses


def profile(**over: object) -> dict:
    base = {
        "name": "p",
        "base_url": "http://127.0.0.1:1/",
        "keys": {"anon": {"value": "anon-key-1"}, "service_role": {"env": "OD_TEST_SR_KEY"}},
        "controls": {"kind": "postgrest", "url": "http://127.0.0.1:1/rest/v1"},
        "clients": {"forwarded_for": True},
    }
    return base | over


SC = LoadScenario.model_validate(
    {
        "type": "load",
        "name": "s",
        "users": 4,
        "duration": "1m",
        "clients": 300,
        "tasks": [
            {"function": "healthz"},
            {"function": "execute-trade", "key": "service_role", "expect": [200, "rate_limited"]},
            {"path": "/rest/v1/emergency_controls?select=*", "name": "controls"},
        ],
    }
)


def test_plan_resolves_keys_statuses_and_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OD_TEST_SR_KEY", "service-key-2")
    p = profile(expect={"rate_limited_status": 503})
    plan, warnings = build_plan(SC, as_target(p))
    assert warnings == []
    tasks = {t["label"]: t for t in plan["tasks"]}
    assert tasks["healthz"]["key"] == "none"
    assert (
        tasks["healthz"]["method"] == "GET" and tasks["healthz"]["path"] == "/functions/v1/healthz"
    )
    assert (
        tasks["execute-trade"]["expect"] == [200, 503]
        and tasks["execute-trade"]["method"] == "POST"
    )
    assert tasks["controls"]["method"] == "GET" and tasks["controls"]["path"].startswith(
        "/rest/v1/"
    )
    assert plan["keys"] == {"anon": "anon-key-1", "service_role": "service-key-2"}
    assert plan["instances"] == ["http://127.0.0.1:1"]
    addrs = plan["clients"]
    assert len(set(addrs)) == 300 and all(ipaddress.ip_address(a) in TEST_NET for a in addrs)


def test_untrusted_forwarded_for_warns_and_bypass_headers_are_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OD_TEST_SR_KEY", "service-key-2")
    monkeypatch.setenv("OD_TEST_BYPASS", "let-me-through")
    p = profile(
        clients={"forwarded_for": False, "bypass_headers": {"X-Skip": {"env": "OD_TEST_BYPASS"}}}
    )
    plan, warnings = build_plan(SC, as_target(p))
    assert plan["clients"] == []
    assert plan["headers"] == {"X-Skip": "let-me-through"}
    assert len(warnings) == 1 and "collapse into one" in warnings[0] and "bypass" in warnings[0]


def test_a_missing_secret_is_an_error_before_anything_runs() -> None:
    os.environ.pop("OD_TEST_SR_KEY", None)
    with pytest.raises(UsageError, match="OD_TEST_SR_KEY"):
        as_target(profile())


def test_client_addresses_wrap_inside_the_test_range() -> None:
    class Last:
        def randrange(self, n: int) -> int:
            return n - 1

    addrs = client_addresses(3, Last())  # type: ignore[arg-type]
    assert addrs == ["198.19.255.255", "198.18.0.0", "198.18.0.1"]
    with pytest.raises(UsageError, match="at most 131072"):
        client_addresses(131073)
