"""Drills on a profile that signs its trades (`trade.signer_key`) against the reference stack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from chaos.drillkit import Stack, run_drills, start_stack

ENV = "OMNIDRILL_TEST_SIGNER_KEY"


@pytest.fixture(scope="module")
def signer_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`omnidrill up`'s profile, rewritten so that drills sign their trades with a test wallet."""
    tmp = tmp_path_factory.mktemp("signer")
    with start_stack(tmp, "--instances", "2") as stack:
        profile = dict(stack.profile)
        profile["trade"] = {
            "signer_key": {"env": ENV},
            "max_amount_usd": 150000,
            "allow_broadcast": True,
        }
        path = tmp / "signer-profile.yaml"
        path.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
        yield Stack(path, profile, tmp)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "0x" + os.urandom(32).hex()  # a wallet of this test only
    monkeypatch.setenv(ENV, value)
    return value


def _calls(url: str, method: str) -> list[dict]:
    resp = httpx.get(f"{url}/__calls", params={"method": method}, timeout=10)
    return resp.json()["calls"]


@pytest.mark.serial
def test_kill_switch_drill_passes_with_signed_trades(
    signer_stack: Stack, key: str, tmp_path: Path
) -> None:
    from eth_account import Account

    me = Account.from_key(key).address
    primary = signer_stack.profile["rpc_direct"]["primary"]
    fallback = signer_stack.profile["rpc_direct"]["fallback"]
    sends_before = len(_calls(primary, "eth_sendRawTransaction"))
    result = run_drills(signer_stack, "kill-switch", report=tmp_path / "report")
    drill = result.drill("kill-switch")
    assert result.code == 0, (
        drill["verdict"],
        drill["reason"],
        result.evidence_text("kill-switch"),
    )
    assert drill["verdict"] == "passed"
    # the trades that went out (steady state before and after) were signed by the wallet,
    # with nonces read from the provider
    sent = [c["params"][0] for c in _calls(primary, "eth_sendRawTransaction")][sends_before:]
    assert sent, "the steady state's trades reached the primary provider"
    assert {Account.recover_transaction(raw) for raw in sent} == {me}
    reads = _calls(primary, "eth_getTransactionCount") + _calls(fallback, "eth_getTransactionCount")
    assert any(c["params"][0].lower() == me.lower() for c in reads)
    # the key is nowhere in what the run wrote or printed
    digits = key[2:]
    for path in (tmp_path / "report").rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace").lower()
            assert digits not in text, f"the signer key leaked into {path}"
    assert digits not in result.output.lower()


@pytest.mark.serial
@pytest.mark.parametrize(
    "drill", ["approval-flow", "idempotency", "rpc-both-down", "rpc-primary-outage", "safe-mode"]
)
def test_trading_drills_pass_with_signed_trades(
    signer_stack: Stack, key: str, tmp_path: Path, drill: str
) -> None:
    result = run_drills(signer_stack, drill, report=tmp_path / "report")
    found = result.drill(drill)
    assert result.code == 0, (found["verdict"], found["reason"], result.evidence_text(drill))
    assert found["verdict"] == "passed"
