"""plan / apply / prune against the local fake Datadog API, through the real SDK and CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from .fake_datadog import FakeDatadog


def _apply_all(run_cli, root: Path) -> None:
    for what in ("monitors", "dashboards"):
        code, _out, err = run_cli(what, "apply", "--root", str(root))
        assert code == 0, err


def test_apply_then_plan_shows_no_change(
    project: Path, fake_dd: FakeDatadog, dd_env: dict[str, str], run_cli
) -> None:
    _apply_all(run_cli, project)
    assert len(fake_dd.slos) == 2 and len(fake_dd.monitors) >= 12 and len(fake_dd.dashboards) == 5
    # burn-rate monitors and SLO widgets name the SLO by the id Datadog gave it
    burn = next(m for m in fake_dd.monitors.values() if "burn_rate(" in m["query"])
    assert any(f'"{sid}"' in burn["query"] for sid in fake_dd.slos)
    dash = next(d for d in fake_dd.dashboards.values() if d["title"].endswith("OmniHub SLOs"))
    assert dash["widgets"][0]["definition"]["slo_id"] in fake_dd.slos
    for what in ("monitors", "dashboards"):
        code, out, err = run_cli(what, "plan", "--root", str(project), "--exit-code")
        assert code == 0, out + err
        assert "0 to create, 0 to update, 0 to delete" in out
    writes_before = sum(m != "GET" for m, _, _ in fake_dd.requests)
    _apply_all(run_cli, project)  # a second apply changes nothing
    assert sum(m != "GET" for m, _, _ in fake_dd.requests) == writes_before


def test_one_edited_threshold_is_exactly_one_field_in_the_plan(
    project: Path, fake_dd: FakeDatadog, dd_env: dict[str, str], run_cli
) -> None:
    _apply_all(run_cli, project)
    rpc = project / "monitors" / "rpc.yaml"
    rpc.write_text(
        rpc.read_text().replace("{critical: 0.25, warning: 0.1}", "{critical: 0.25, warning: 0.15}")
    )
    code, out, _ = run_cli("monitors", "plan", "--root", str(project), "--exit-code")
    assert code == 1
    changed = [line for line in out.splitlines() if line.startswith(("+", "~", "-", "    "))]
    assert changed[0].startswith("~ update monitor rpc-errors (")
    assert changed[1:] == ["    options.thresholds.warning: 0.1 -> 0.15"]
    code, out, _ = run_cli("monitors", "apply", "--root", str(project))
    assert code == 0
    code, out, _ = run_cli("monitors", "plan", "--root", str(project), "--exit-code")
    assert code == 0, out


@pytest.mark.parametrize("options_on_put", ["replace", "merge"])
def test_a_change_made_in_the_ui_is_shown_and_reverted(
    project: Path, fake_dd: FakeDatadog, dd_env: dict[str, str], run_cli, options_on_put: str
) -> None:
    fake_dd.options_on_put = options_on_put
    _apply_all(run_cli, project)
    mon = next(m for m in fake_dd.monitors.values() if "omnidrill-id:dlq-not-empty" in m["tags"])
    mon["options"]["renotify_interval"] = 30  # someone edited it by hand
    mon["name"] = "renamed by hand"
    _code, out, _ = run_cli("monitors", "plan", "--root", str(project))
    assert "options.renotify_interval: 30 -> null" in out
    assert 'name: "renamed by hand" -> ' in out
    run_cli("monitors", "apply", "--root", str(project))
    assert mon["name"].endswith("is not empty")
    code, out, _ = run_cli("monitors", "plan", "--root", str(project), "--exit-code")
    assert code == 0, out


def test_prune_removes_only_managed_objects_of_the_environment(
    project: Path, fake_dd: FakeDatadog, dd_env: dict[str, str], run_cli
) -> None:
    _apply_all(run_cli, project)
    # someone else's monitor, and one omnidrill manages for production
    fake_dd.create_monitor(
        {
            "type": "query alert",
            "query": "avg(last_5m):avg:other{*} > 1",
            "name": "not ours",
            "tags": ["team:other"],
        },
        {},
        {},
    )
    fake_dd.create_monitor(
        {
            "type": "query alert",
            "query": "avg(last_5m):avg:x{*} > 1",
            "name": "prod",
            "tags": [
                "managed-by:omnidrill",
                "omnidrill-id:dlq-not-empty",
                "omnidrill-env:production",
            ],
        },
        {},
        {},
    )
    queues = project / "monitors" / "queues.yaml"
    text = queues.read_text()
    queues.write_text(text[: text.index("  - id: dlq-not-empty")])
    (project / "dashboards" / "approvals.yaml").unlink()
    before = len(fake_dd.monitors)

    code, out, _ = run_cli("monitors", "prune", "--root", str(project))
    assert code == 0 and "- delete monitor dlq-not-empty" in out and "add --yes" in out
    assert len(fake_dd.monitors) == before  # nothing deleted without --yes

    code, out, _ = run_cli("monitors", "prune", "--root", str(project), "--yes")
    assert code == 0, out
    names = {m["name"] for m in fake_dd.monitors.values()}
    assert len(fake_dd.monitors) == before - 1
    assert "not ours" in names and "prod" in names
    assert not any(
        "omnidrill-id:dlq-not-empty" in m["tags"] and "omnidrill-env:staging" in m["tags"]
        for m in fake_dd.monitors.values()
    )
    code, out, _ = run_cli("dashboards", "prune", "--root", str(project), "--yes")
    assert code == 0 and "deleted 1 managed object(s)" in out
    assert len(fake_dd.dashboards) == 4


def test_missing_key_is_a_clear_error_before_any_call(
    project: Path, fake_dd: FakeDatadog, dd_env: dict[str, str], run_cli, monkeypatch
) -> None:
    monkeypatch.delenv("DD_APP_KEY")
    code, _, err = run_cli("monitors", "plan", "--root", str(project))
    assert code == 2
    assert "DD_APP_KEY not set" in err
    assert fake_dd.requests == []


def test_api_error_shows_datadogs_message_and_exits_5(
    project: Path, fake_dd: FakeDatadog, dd_env: dict[str, str], run_cli, monkeypatch
) -> None:
    monkeypatch.setenv("DD_APP_KEY", "wrong-application-key")
    code, _, err = run_cli("monitors", "plan", "--root", str(project))
    assert code == 5
    assert "403" in err and "Forbidden" in err
    assert "wrong-application-key" not in err
    monkeypatch.setenv("DD_APP_KEY", fake_dd.app_key)
    fake_dd.fail_next(
        400, errors=["Duplicate of an existing monitor"], path_prefix="/api/v1/monitor"
    )
    fake_dd.fail_next(
        400, errors=["Duplicate of an existing monitor"], path_prefix="/api/v1/monitor"
    )
    code, _, err = run_cli("monitors", "apply", "--root", str(project))
    assert code == 5 and "Duplicate of an existing monitor" in err


def test_429_and_5xx_are_retried_with_back_off(
    project: Path, fake_dd: FakeDatadog, dd_env: dict[str, str], run_cli
) -> None:
    fake_dd.fail_next(429, 2, headers={"X-RateLimit-Reset": "0"})
    fake_dd.fail_next(503, 1)
    code, _out, err = run_cli("monitors", "apply", "--root", str(project))
    assert code == 0, err
    assert [s for _, _, s in fake_dd.requests[:4]] == [429, 429, 503, 200]
    fake_dd.fail_next(500, 10)
    code, _, err = run_cli("monitors", "plan", "--root", str(project))
    assert code == 5 and "500" in err and "fake error 500" in err


def test_production_changes_need_confirm(
    project: Path, fake_dd: FakeDatadog, dd_env: dict[str, str], run_cli
) -> None:
    code, _, err = run_cli("monitors", "apply", "--root", str(project), "--env", "production")
    assert code == 2 and "--confirm production" in err
    assert fake_dd.requests == []
    code, _, err = run_cli(
        "monitors",
        "apply",
        "--root",
        str(project),
        "--env",
        "production",
        "--confirm",
        "production",
    )
    assert code == 0, err
    assert all("omnidrill-env:production" in m["tags"] for m in fake_dd.monitors.values())


def test_the_fake_refuses_what_datadog_refuses(fake_dd: FakeDatadog) -> None:
    """The SDK sends what the compiler would have stopped; the fake answers as Datadog does."""
    from datadog_api_client.v1.api.monitors_api import MonitorsApi
    from datadog_api_client.v1.model.monitor import Monitor

    from omnidrill.observe.ddclient import DatadogApiError, DatadogSettings, api_client, call

    settings = DatadogSettings(fake_dd.api_key, fake_dd.app_key, fake_dd.url, backoff_s=0.01)
    bad = [
        ({"type": "bogus alert", "query": "avg(last_5m):avg:x{*} > 1"}, "Invalid monitor type"),
        (
            {
                "type": "query alert",
                "query": "avg(last_5m):avg:x{*} > 1",
                "options": {"thresholds": {"critical": 2}},
            },
            "does not match that used in the query",
        ),
        (
            {
                "type": "query alert",
                "query": "avg(last_5m):avg:x{*} > 1",
                "options": {"thresholds": {"warning": 0.5}},
            },
            "Alert status is required",
        ),
    ]
    with api_client(settings) as client:
        for body, msg in bad:
            try:
                call(settings, "create", MonitorsApi(client).create_monitor, Monitor(**body))
            except DatadogApiError as exc:
                assert exc.status == 400 and msg in str(exc)
            else:
                raise AssertionError(f"accepted {body}")


def test_an_slo_target_change_is_planned_and_applied(
    project: Path, fake_dd: FakeDatadog, dd_env: dict[str, str], run_cli
) -> None:
    _apply_all(run_cli, project)
    env = project / "monitors" / "env" / "staging.yaml"
    env.write_text(env.read_text().replace("latency_target: 99.0", "latency_target: 99.2"))
    code, out, _ = run_cli("monitors", "plan", "--root", str(project), "--exit-code")
    assert code == 1
    assert "~ update slo agent-latency (" in out
    assert "    thresholds[0].target: 99 -> 99.2" in out
    assert "1 to update" in out  # burn-rate monitors still name the same SLO id
    code, out, err = run_cli("monitors", "apply", "--root", str(project))
    assert code == 0, err
    slo = next(s for s in fake_dd.slos.values() if s["type"] == "time_slice")
    assert slo["thresholds"][0]["target"] == 99.2
    code, out, _ = run_cli("monitors", "plan", "--root", str(project), "--exit-code")
    assert code == 0, out


def test_dd_site_selects_the_host() -> None:
    from omnidrill.observe.ddclient import DatadogSettings, configuration

    def host(site: str) -> str:
        return configuration(DatadogSettings("k" * 32, "a" * 40, site)).host

    assert host("datadoghq.eu") == "https://api.datadoghq.eu"
    assert host("us5.datadoghq.com") == "https://api.us5.datadoghq.com"
    assert host("dd.internal.example") == "https://api.dd.internal.example"
    assert host("http://127.0.0.1:8126/") == "http://127.0.0.1:8126"
    settings = DatadogSettings.from_env({"DD_API_KEY": "x" * 32, "DD_APP_KEY": "y" * 40})
    assert settings.site == "datadoghq.com"


def test_the_fake_refuses_malformed_bodies_on_the_wire(fake_dd: FakeDatadog) -> None:
    """What the SDK's models would stop client-side, sent raw, is refused as Datadog does."""
    import httpx

    headers = {"DD-API-KEY": fake_dd.api_key, "DD-APPLICATION-KEY": fake_dd.app_key}
    cases = [
        ({"type": "query alert", "name": "no query"}, "Missing required field: 'query'"),
        (
            {"type": "query alert", "query": "avg(last_5m):avg:x{*} > 1", "name": 5},
            "Invalid value for 'name'",
        ),
        (
            {"type": "query alert", "query": "avg(last_5m):avg:x{*} > 1", "priority": 9},
            "Invalid priority",
        ),
        (
            {
                "type": "query alert",
                "query": "avg(last_5m):avg:x{*} > 1",
                "options": {"thresholds": {"critical": "high"}},
            },
            "expected a number",
        ),
    ]
    with httpx.Client(base_url=fake_dd.url, headers=headers, timeout=10) as client:
        for body, msg in cases:
            r = client.post("/api/v1/monitor", json=body)
            assert r.status_code == 400 and msg in r.json()["errors"][0], (body, r.text)
        r = client.post(
            "/api/v1/monitor", json={"type": "query alert", "query": "avg(last_5m):avg:x{*} > 1"}
        )
        mon = r.json()
        assert r.status_code == 200 and isinstance(mon["id"], int)
        assert mon["overall_state"] == "No Data" and mon["creator"]["handle"]
        assert mon["options"]["notify_audit"] is False and mon["options"]["new_host_delay"] == 300
        r = client.get("/api/v1/monitor", headers={"DD-APPLICATION-KEY": "nope"})
        assert r.status_code == 403 and r.json() == {"errors": ["Forbidden"]}


def test_apply_keeps_a_mute_set_by_on_call(
    project: Path, fake_dd: FakeDatadog, dd_env: dict[str, str], run_cli
) -> None:
    _apply_all(run_cli, project)
    mon = next(m for m in fake_dd.monitors.values() if "omnidrill-id:rpc-errors" in m["tags"])
    mon["options"]["silenced"] = {"*": None}  # muted by hand during an incident
    code, out, _ = run_cli("monitors", "plan", "--root", str(project), "--exit-code")
    assert code == 0, out  # not a difference
    mon["message"] = "edited by hand"
    code, out, _ = run_cli("monitors", "apply", "--root", str(project))
    assert code == 0
    assert mon["message"] != "edited by hand"
    assert mon["options"]["silenced"] == {"*": None}


def test_dashboards_before_their_slos_is_a_clear_error(
    project: Path, fake_dd: FakeDatadog, dd_env: dict[str, str], run_cli
) -> None:
    code, _, err = run_cli("dashboards", "apply", "--root", str(project))
    assert code == 2
    assert "['agent-availability', 'agent-latency']" in err and "monitors apply" in err
    assert fake_dd.dashboards == {}  # refused before changing anything


def test_server_side_rewrites_are_no_difference(
    tmp_path: Path, fake_dd: FakeDatadog, dd_env: dict[str, str], run_cli
) -> None:
    """Datadog stores `metric alert` as `query alert`, trims text, fills option defaults."""
    (tmp_path / "monitors" / "env").mkdir(parents=True)
    (tmp_path / "monitors" / "env" / "staging.yaml").write_text("{}\n")
    (tmp_path / "monitors" / "m.yaml").write_text(
        "monitors:\n  - id: m\n    name: '  padded name  '\n    type: metric alert\n"
        "    query: 'avg(last_5m):avg:x{*} > 2'\n    message: |\n      text\n\n"
        "    options: {notify_no_data: true}\n"
    )
    code, _, err = run_cli("monitors", "apply", "--root", str(tmp_path))
    assert code == 0, err
    (mon,) = fake_dd.monitors.values()
    assert mon["type"] == "query alert" and mon["options"]["no_data_timeframe"] == 10
    code, out, _ = run_cli("monitors", "plan", "--root", str(tmp_path), "--exit-code")
    assert code == 0, out
