"""The reference target's reading of provider answers (CONTRACT P4, P3 backoff hints)."""

from __future__ import annotations

import json

import pytest

from omnihub_ref.rpc_client import (
    MAX_BACKOFF_S,
    ProviderDown,
    Reply,
    RpcRejected,
    _parse_head,
    judge_reply,
)


def reply(status: int, body: object, retry_after: float | None = None) -> Reply:
    return Reply(status, json.dumps(body).encode(), retry_after)


def error(code: int, data: object = None) -> dict[str, object]:
    err: dict[str, object] = {"code": code, "message": "m"}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": 1, "error": err}


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_throttled_or_failing_http_counts_as_down(status: int) -> None:
    with pytest.raises(ProviderDown):
        judge_reply(reply(status, {"jsonrpc": "2.0", "id": 1, "result": "0x1"}))


@pytest.mark.parametrize("code", [-32000, -32005, -32099])
def test_server_range_errors_count_as_down(code: int) -> None:
    with pytest.raises(ProviderDown):
        judge_reply(reply(200, error(code)))


@pytest.mark.parametrize("code", [-32600, -32602, -32699, -32700, 3])
def test_other_errors_are_the_callers(code: int) -> None:
    with pytest.raises(RpcRejected):
        judge_reply(reply(200, error(code)))


def test_backoff_hints_the_longest_wins_and_is_capped() -> None:
    infura = reply(429, error(-32005, {"backoff_seconds": 30.0}), retry_after=2.0)
    with pytest.raises(ProviderDown) as caught:
        judge_reply(infura)
    assert caught.value.pause == 30.0
    with pytest.raises(ProviderDown) as caught:
        judge_reply(reply(200, error(-32005, {"backoff_seconds": 10_000})))
    assert caught.value.pause == MAX_BACKOFF_S
    with pytest.raises(ProviderDown) as caught:
        judge_reply(reply(503, "down"))
    assert caught.value.pause is None


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    head = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0"
    assert _parse_head(head)[4] == 7.0
    head = b"HTTP/1.1 503 x\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\nContent-Length: 0"
    assert _parse_head(head)[4] == 0.0  # a date in the past: no pause
    assert judge_reply(reply(200, {"jsonrpc": "2.0", "id": 1, "result": "0x2a"})) == "0x2a"
