"""Active canaries through the real load runner against two small fake targets: the load is
interleaved (same clients, same mix, both sides), a slower or failing canary fails, naming
the metric, and an identical one passes."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from load.helpers import fake_profile, fake_target
from observe.fake_datadog import FakeDatadog
from omnidrill.canary.models import CanaryScenario
from omnidrill.canary.runner import post_to_datadog, run_canary
from omnidrill.errors import UsageError
from omnidrill.netutil import free_port
from omnidrill.profile import TargetProfile

pytestmark = pytest.mark.serial  # load with latency differences: alone, not beside other tests


def two_sides(delays: tuple[float, float]):  # type: ignore[no-untyped-def]
    """Two fake targets in processes of their own (a slow one does not slow the other)."""
    from contextlib import ExitStack

    stack = ExitStack()
    ports = [stack.enter_context(fake_target(delay_ms=d))[0] for d in delays]
    return stack, ports


def scenario(**kw: object) -> CanaryScenario:
    return CanaryScenario.model_validate(
        {
            "type": "canary",
            "name": "fake",
            "load": {
                "users": 4,
                "duration": "6s",
                "pacing": {"per_user_rps": 25},
                "clients": 40,
                "tasks": [
                    {"function": "wallet-balance", "body": {"address": "${address}"}},
                    {"function": "omnilink-agent", "name": "agent", "weight": 2},
                ],
            },
            "warmup": "1s",
            "metrics": [
                {"function": "wallet-balance", "measure": "p50", "tolerance": "20%"},
                {"function": "all", "measure": "p75", "tolerance": "20%"},
                {"function": "all", "measure": "error_rate", "tolerance": "1%", "critical": True},
            ],
            **kw,
        }
    )


def profile(ports: list[int]) -> TargetProfile:
    return TargetProfile.model_validate(fake_profile(ports))


def never(name: str) -> TargetProfile:
    raise AssertionError(f"no other profile should be loaded, asked {name}")


def clients_seen(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__clients", timeout=5) as resp:
        return json.loads(resp.read())


def test_identical_sides_pass_on_interleaved_load(tmp_path: Path) -> None:
    stack, ports = two_sides((3, 3))
    with stack:
        result = run_canary(scenario(), profile(ports), out_dir=tmp_path, load_profile=never)
        seen = [clients_seen(p) for p in ports]
    assert result.verdict == "pass", result.lines()
    sides = result.per_side
    # every pair goes to both sides: the counts differ at most by the pairs cut by the stop
    assert abs(sides["baseline"]["requests"] - sides["canary"]["requests"]) <= 8
    assert sides["baseline"]["requests"] >= 300
    # the same client identities reached both sides, each about as often
    assert set(seen[0]) == set(seen[1]) and len(seen[0]) == 40
    data = result.to_json()
    assert data["verdict"] == "pass" and data["outcome"] == "passed"
    assert {m["status"] for m in data["metrics"]} == {"pass"}
    assert (tmp_path / "load-raw-0.csv").exists()


def test_a_slower_canary_fails_naming_its_latency_metrics(tmp_path: Path) -> None:
    stack, ports = two_sides((3, 8))
    with stack:
        result = run_canary(scenario(), profile(ports), out_dir=tmp_path, load_profile=never)
    assert result.verdict == "fail" and result.exit_code == 1, result.lines()
    worse = {m.label for m in result.judgement.metrics if m.status == "worse"}  # type: ignore[union-attr]
    assert worse == {"wallet-balance p50", "all p75"}
    assert any("wallet-balance p50" in r for r in result.judgement.reasons)  # type: ignore[union-attr]
    # the Datadog event of the run, through the real SDK against the fake API
    dd = FakeDatadog().start()
    try:
        event_id, warnings = post_to_datadog(result, environment="dev", environ=dd.sdk_env())
    finally:
        dd.stop()
    assert warnings == [] and event_id is not None
    event = dd.events[0]
    assert event["title"] == "omnidrill: canary-fake FAILED on fake"
    assert event["alert_type"] == "error" and "drill:canary-fake" in event["tags"]
    assert "FAIL wallet-balance p50" in event["text"] and "PASS all error_rate" in event["text"]
    assert {s["metric"] for s in dd.series} >= {"omnidrill.drill.passed"}


def test_a_failing_canary_fails_on_its_error_rate(tmp_path: Path) -> None:
    stack, ports = two_sides((3, 3))
    with stack:
        req = urllib.request.Request(
            f"http://127.0.0.1:{ports[1]}/__fault", data=b'{"on": true}', method="POST"
        )
        urllib.request.urlopen(req, timeout=5).close()
        result = run_canary(scenario(), profile(ports), out_dir=tmp_path, load_profile=never)
    assert result.verdict == "fail", result.lines()
    err = next(m for m in result.judgement.metrics if m.measure == "error_rate")  # type: ignore[union-attr]
    assert err.status == "worse" and err.canary_value == 1.0 and err.baseline_value == 0.0


def test_a_side_that_does_not_answer_is_inconclusive(tmp_path: Path) -> None:
    with fake_target(delay_ms=1) as ports:
        gone = [ports[0], free_port()]  # nothing listens there
        result = run_canary(scenario(), profile(gone), out_dir=tmp_path, load_profile=never)
    assert result.verdict == "inconclusive" and result.exit_code == 5
    assert "the canary does not answer" in (result.not_measured or "")


def test_sides_that_share_an_instance_are_refused(tmp_path: Path) -> None:
    p = profile([1, 2])
    with pytest.raises(UsageError, match="share"):
        run_canary(scenario(canary={"instances": [0]}), p, out_dir=tmp_path, load_profile=never)
    with pytest.raises(UsageError, match="outside profile 'fake'"):
        run_canary(scenario(canary={"instances": [5]}), p, out_dir=tmp_path, load_profile=never)


def test_a_canary_on_a_production_profile_of_its_own_needs_its_name(tmp_path: Path) -> None:
    from omnidrill.errors import RunRefused

    with fake_target(delay_ms=1) as ports, fake_target(delay_ms=1) as other:
        prod = TargetProfile.model_validate(
            {
                **fake_profile(other),
                "name": "prod-canary",
                "environment": "production",
                "keys": {"anon": {"env": "X_ANON"}, "service_role": {"env": "X_SERVICE"}},
            }
        )
        sc = scenario(baseline={"instances": [0]}, canary={"profile": "prod-canary"})
        with pytest.raises(RunRefused, match="--confirm prod-canary"):
            run_canary(sc, profile(ports), out_dir=tmp_path, load_profile=lambda _: prod)
        assert clients_seen(ports[0]) == {} and clients_seen(other[0]) == {}


def test_baseline_and_canary_on_two_profiles(tmp_path: Path) -> None:
    """Baseline from --target, canary from a profile of its own (another system)."""
    stack, ports = two_sides((3, 3))
    with stack:
        other = TargetProfile.model_validate({**fake_profile([ports[1]]), "name": "green"})
        sc = scenario(baseline={}, canary={"profile": "green"})
        result = run_canary(sc, profile([ports[0]]), out_dir=tmp_path, load_profile=lambda _: other)
        seen = [clients_seen(p) for p in ports]
    assert result.verdict == "pass", result.lines()
    assert result.sides["canary"].endswith("(profile green)")
    assert sum(seen[0].values()) > 300 and sum(seen[1].values()) > 300
