"""`rpc.tx_present` with `since`: only the sends each provider recorded after the mark count
(two real mock providers over HTTP, their own clocks)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from omnidrill import ethtx
from omnidrill.chaos import rpc
from omnidrill.chaos.httpfaults import provider_marks
from omnihub_ref.rpc_mock import create_rpc_app
from omnihub_ref.serving import serve_in_thread


@pytest.fixture
def providers() -> Iterator[dict[str, str]]:
    with (
        serve_in_thread(create_rpc_app("primary")) as p,
        serve_in_thread(create_rpc_app("fallback")) as f,
    ):
        yield {"primary": p.url, "fallback": f.url}


def _send(url: str, raw: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]}
    assert "result" in httpx.post(url, json=body, timeout=5).json()


class _Rt:
    """What provider_marks reads of a runtime: the profile's rpc_direct route of each provider."""

    def __init__(self, providers: dict[str, str]) -> None:
        self.resolved = self
        self._providers = providers

    def rpc_url(self, which: str) -> str | None:
        return self._providers.get(which)


def test_sends_before_the_mark_are_not_counted(providers: dict[str, str]) -> None:
    raw = ethtx.random_raw_tx()
    sent = [{"raw_tx": raw, "tx_hash": ethtx.tx_hash(raw), "status": 200}]
    _send(providers["primary"], raw)
    rt = _Rt(providers)
    marks = provider_marks(rt)  # type: ignore[arg-type]
    assert marks["primary"] and marks["primary"] > 0 and marks["fallback"] == 0.0
    problems, _, countable = rpc.present(providers, sent, 0, marks)
    assert countable and not problems, problems
    problems, _, _ = rpc.present(providers, sent, 1, None)
    assert not problems, "without a mark the earlier send counts"
    _send(providers["fallback"], raw)  # a second broadcast after the mark, on the other side
    problems, _, countable = rpc.present(providers, sent, 0, marks)
    assert countable and problems == [
        f"transaction {sent[0]['tx_hash']} was sent 1 time(s) across providers, expected exactly 0"
    ]


def test_a_provider_without_a_record_makes_the_count_unknowable(providers: dict[str, str]) -> None:
    raw = ethtx.random_raw_tx()
    sent = [{"raw_tx": raw, "tx_hash": ethtx.tx_hash(raw), "status": 200}]
    _send(providers["primary"], raw)
    _, _, countable = rpc.present(providers, sent, 1, {"primary": 0.0, "fallback": None})
    assert not countable
