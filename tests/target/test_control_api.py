"""The control API over real HTTP, on Postgres: reads, writes, keys, audit, errors."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from omnihub_ref.control_api import create_control_app
from omnihub_ref.serving import serve_in_thread
from omnihub_ref.stores import Store, open_store
from omnihub_ref.stores.schema import CONTROLS_ROW_ID

ANON = "anon-key-for-tests-0123456789"
SERVICE = "service-role-key-for-tests-9876543210"
ROW = f"id=eq.{CONTROLS_ROW_ID}"
REP = {"Prefer": "return=representation"}


def keys(key: str) -> dict[str, str]:
    return {"apikey": key, "Authorization": f"Bearer {key}"}


@pytest.fixture
def store(pg_dsn: str) -> Iterator[Store]:
    """A freshly migrated store in a schema of its own of the session database."""
    schema = f"ctl_{uuid.uuid4().hex[:12]}"
    s = open_store(pg_dsn, pg_schema=schema)
    yield s
    s.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def base_url(store: Store) -> Iterator[str]:
    app = create_control_app(store, anon_key=ANON, service_role_key=SERVICE)
    with serve_in_thread(app) as srv:
        yield f"{srv.url}/rest/v1"


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, headers=keys(SERVICE), timeout=15) as client:
        yield client


def controls(api: httpx.Client) -> dict[str, Any]:
    resp = api.get("/emergency_controls", params={"select": "*"})
    assert resp.status_code == 200, resp.text
    rows = resp.json()
    assert len(rows) == 1
    return rows[0]


def audit(api: httpx.Client) -> list[dict[str, Any]]:
    resp = api.get(
        "/audit_logs",
        params={"resource_type": "eq.emergency_controls", "order": "created_at.desc"},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def new_approval(api: httpx.Client, **overrides: Any) -> dict[str, Any]:
    row = {
        "user_id": "user-1",
        "action": "execute_trade",
        "amount_usd": 25000,
        "risk_level": "high",
        "request": {"user_id": "user-1", "amount_usd": 25000, "tx_hash": "0x" + "ab" * 32},
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        **overrides,
    }
    resp = api.post("/approval_queue", json=row, headers=REP)
    assert resp.status_code == 201, resp.text
    (created,) = resp.json()
    return created


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "details", "hint", "message"}
    assert body["message"]
    if code is not None:
        assert body["code"] == code, body
    assert SERVICE not in resp.text and ANON not in resp.text
    return body


# --- emergency_controls: reads -------------------------------------------------------------


def test_seeded_row_has_everything_off(api: httpx.Client) -> None:
    row = controls(api)
    assert row["id"] == CONTROLS_ROW_ID
    assert row["omnihub_kill_switch"] is False
    assert row["execution_safe_mode"] is False
    assert row["operator_takeover"] is False
    assert row["allowed_operations"] == []
    assert datetime.fromisoformat(row["updated_at"]).tzinfo is not None
    assert set(row) == {
        "id",
        "omnihub_kill_switch",
        "execution_safe_mode",
        "operator_takeover",
        "allowed_operations",
        "updated_at",
        "updated_by",
        "reason",
    }


def test_select_a_column_list(api: httpx.Client) -> None:
    resp = api.get("/emergency_controls", params={"select": "id, omnihub_kill_switch"})
    assert resp.status_code == 200
    assert resp.json() == [{"id": CONTROLS_ROW_ID, "omnihub_kill_switch": False}]
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["content-range"] == "0-0/*"


def test_select_errors(api: httpx.Client) -> None:
    assert_error(api.get("/emergency_controls", params={"select": "nope"}), 400, "42703")
    assert_error(api.get("/emergency_controls", params={"select": "id::text"}), 400, "PGRST100")
    assert_error(api.get("/emergency_controls", params={"select": "rel(*)"}), 400, "PGRST100")


def test_single_object_accept_header(api: httpx.Client) -> None:
    one = api.get(
        "/emergency_controls",
        params={"select": "id"},
        headers={"Accept": "application/vnd.pgrst.object+json"},
    )
    assert one.status_code == 200 and one.json() == {"id": CONTROLS_ROW_ID}
    none = api.get(
        "/emergency_controls",
        params={"id": "eq." + str(uuid.uuid4())},
        headers={"Accept": "application/vnd.pgrst.object+json"},
    )
    assert_error(none, 406, "PGRST116")


def test_head_answers_headers_only(api: httpx.Client) -> None:
    resp = api.head("/emergency_controls")
    assert resp.status_code == 200 and resp.content == b""


# --- emergency_controls: writes and the audit trail (C6) ----------------------------------


def test_patch_with_representation_returns_the_row(api: httpx.Client) -> None:
    before = controls(api)
    resp = api.patch(
        f"/emergency_controls?{ROW}",
        json={"omnihub_kill_switch": True, "reason": "drill k1", "updated_by": "omnidrill"},
        headers=REP,
    )
    assert resp.status_code == 200, resp.text
    (row,) = resp.json()
    assert row["omnihub_kill_switch"] is True and row["reason"] == "drill k1"
    assert row["updated_by"] == "omnidrill"
    assert row["updated_at"] > before["updated_at"]  # maintained on every change
    assert controls(api) == row


def test_patch_without_representation_is_204(api: httpx.Client) -> None:
    resp = api.patch(
        f"/emergency_controls?{ROW}",
        json={"operator_takeover": True, "allowed_operations": ["wallet_balance"]},
    )
    assert resp.status_code == 204 and resp.content == b""
    row = controls(api)
    assert row["operator_takeover"] is True
    assert row["allowed_operations"] == ["wallet_balance"]


def test_patch_select_limits_returned_columns(api: httpx.Client) -> None:
    resp = api.patch(
        f"/emergency_controls?{ROW}&select=id,execution_safe_mode",
        json={"execution_safe_mode": True},
        headers=REP,
    )
    assert resp.json() == [{"id": CONTROLS_ROW_ID, "execution_safe_mode": True}]


def test_patch_without_filter_is_refused_and_changes_nothing(api: httpx.Client) -> None:
    before = controls(api)
    body = assert_error(
        api.patch("/emergency_controls", json={"omnihub_kill_switch": True}), 400, "21000"
    )
    assert "WHERE" in body["message"]
    # select/order alone are not filters
    assert_error(
        api.patch("/emergency_controls?select=*", json={"omnihub_kill_switch": True}), 400, "21000"
    )
    assert controls(api) == before
    assert audit(api) == []


def test_patch_matching_no_row_changes_nothing(api: httpx.Client) -> None:
    resp = api.patch(
        f"/emergency_controls?id=eq.{uuid.uuid4()}", json={"omnihub_kill_switch": True}, headers=REP
    )
    assert resp.status_code == 200 and resp.json() == []
    assert audit(api) == []


def test_every_change_writes_one_audit_row_with_old_and_new(api: httpx.Client) -> None:
    api.patch(f"/emergency_controls?{ROW}", json={"omnihub_kill_switch": True, "reason": "a"})
    api.patch(f"/emergency_controls?{ROW}", json={"omnihub_kill_switch": False, "reason": "b"})
    rows = audit(api)
    assert len(rows) == 2
    newest, oldest = rows
    for r in rows:
        assert r["action"] == "emergency_control_updated"
        assert r["resource_type"] == "emergency_controls"
        assert r["resource_id"] == CONTROLS_ROW_ID
    assert oldest["metadata"]["old"]["omnihub_kill_switch"] is False
    assert oldest["metadata"]["new"]["omnihub_kill_switch"] is True
    assert oldest["metadata"]["new"]["reason"] == "a"
    assert newest["metadata"]["old"]["reason"] == "a"
    assert newest["metadata"]["new"]["reason"] == "b"
    assert newest["metadata"]["new"]["allowed_operations"] == []
    assert newest["created_at"] >= oldest["created_at"]
    asc = api.get("/audit_logs", params={"order": "created_at.asc", "select": "id"}).json()
    assert [r["id"] for r in asc] == [oldest["id"], newest["id"]]


def test_concurrent_patches_lose_no_audit_row(base_url: str) -> None:
    n = 16
    errors: list[str] = []
    barrier = threading.Barrier(n)

    def flip(i: int) -> None:
        with httpx.Client(base_url=base_url, headers=keys(SERVICE), timeout=30) as c:
            barrier.wait()
            resp = c.patch(
                f"/emergency_controls?{ROW}",
                json={"omnihub_kill_switch": i % 2 == 0, "reason": f"writer {i}"},
            )
            if resp.status_code != 204:
                errors.append(resp.text)

    threads = [threading.Thread(target=flip, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with httpx.Client(base_url=base_url, headers=keys(SERVICE), timeout=15) as api:
        rows = audit(api)
        assert len(rows) == n
        assert {r["metadata"]["new"]["reason"] for r in rows} == {f"writer {i}" for i in range(n)}
        # The trail is a chain: each change's "old" is the previous change's "new".
        chain = list(reversed(rows))
        for prev, cur in itertools.pairwise(chain):
            assert cur["metadata"]["old"]["reason"] == prev["metadata"]["new"]["reason"]
        assert controls(api)["reason"] == chain[-1]["metadata"]["new"]["reason"]


# --- keys (S1) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"apikey": SERVICE},
        {"Authorization": f"Bearer {SERVICE}"},
        {"apikey": "wrong-key", "Authorization": "Bearer wrong-key"},
        {"apikey": SERVICE, "Authorization": "Bearer wrong-key"},
        {"apikey": "wrong-key", "Authorization": f"Bearer {SERVICE}"},
        {"apikey": SERVICE, "Authorization": f"Bearer {ANON}"},
        {"apikey": ANON, "Authorization": f"Bearer {SERVICE}"},
        {"apikey": SERVICE, "Authorization": f"Basic {SERVICE}"},
        {"apikey": SERVICE + "x", "Authorization": f"Bearer {SERVICE}x"},
    ],
    ids=[
        "none",
        "apikey-only",
        "bearer-only",
        "both-wrong",
        "bearer-wrong",
        "apikey-wrong",
        "bearer-anon",
        "apikey-anon",
        "not-bearer",
        "longer-key",
    ],
)
def test_missing_or_wrong_key_is_401_and_changes_nothing(
    api: httpx.Client, base_url: str, headers: dict[str, str]
) -> None:
    before = controls(api)
    with httpx.Client(base_url=base_url, timeout=15) as bare:
        assert_error(bare.get("/emergency_controls", headers=headers), 401)
        assert_error(
            bare.patch(
                f"/emergency_controls?{ROW}", json={"omnihub_kill_switch": True}, headers=headers
            ),
            401,
        )
    assert controls(api) == before
    assert audit(api) == []


@pytest.mark.parametrize("table", ["emergency_controls", "approval_queue", "audit_logs"])
def test_anon_key_is_refused_on_every_control_table(
    api: httpx.Client, base_url: str, table: str
) -> None:
    approval = new_approval(api)
    before = (controls(api), api.get("/approval_queue").json())
    with httpx.Client(base_url=base_url, headers=keys(ANON), timeout=15) as anon:
        body = assert_error(anon.get(f"/{table}"), 401, "42501")
        assert table in body["message"]
        assert_error(anon.patch(f"/{table}?{ROW}", json={"omnihub_kill_switch": True}), 401)
        assert_error(
            anon.patch(f"/approval_queue?id=eq.{approval['id']}", json={"status": "approved"}), 401
        )
        assert_error(
            anon.post("/approval_queue", json={"user_id": "x", "action": "a"}, headers=REP), 401
        )
    assert (controls(api), api.get("/approval_queue").json()) == before
    assert audit(api) == []


# --- approval_queue ---------------------------------------------------------------------------


def test_insert_approval_returns_the_row_with_defaults(api: httpx.Client) -> None:
    row = new_approval(api)
    uuid.UUID(row["id"])
    assert row["status"] == "pending"
    assert row["user_id"] == "user-1" and row["action"] == "execute_trade"
    assert row["amount_usd"] == 25000 and row["risk_level"] == "high"
    assert row["request"]["tx_hash"] == "0x" + "ab" * 32
    assert row["decided_at"] is None and row["executed_at"] is None
    assert datetime.fromisoformat(row["created_at"]) <= datetime.fromisoformat(row["expires_at"])
    got = api.get("/approval_queue", params={"id": f"eq.{row['id']}"}).json()
    assert got == [row]


def test_insert_without_representation_is_201_empty(api: httpx.Client) -> None:
    resp = api.post(
        "/approval_queue",
        json={"user_id": "u", "action": "execute_trade", "amount_usd": 1.5, "risk_level": "low"},
    )
    assert resp.status_code == 201 and resp.content == b""
    (row,) = api.get("/approval_queue").json()
    assert row["amount_usd"] == 1.5
    # expires_at defaults to about an hour ahead
    left = datetime.fromisoformat(row["expires_at"]) - datetime.now(UTC)
    assert timedelta(minutes=55) < left <= timedelta(hours=1)


def test_bulk_insert_is_all_or_nothing(api: httpx.Client) -> None:
    good = {"user_id": "u", "action": "execute_trade", "amount_usd": 10, "risk_level": "low"}
    resp = api.post("/approval_queue", json=[good, good], headers=REP)
    assert resp.status_code == 201 and len(resp.json()) == 2
    bad = {**good, "risk_level": "extreme"}
    assert_error(api.post("/approval_queue", json=[good, bad]), 400, "23514")
    assert_error(api.post("/approval_queue", json=[good, {"user_id": "u"}]), 400, "PGRST102")
    assert len(api.get("/approval_queue").json()) == 2


def test_approve_sets_decided_at_and_a_decision_is_final(api: httpx.Client) -> None:
    row = new_approval(api)
    resp = api.patch(
        f"/approval_queue?id=eq.{row['id']}",
        json={"status": "approved", "decided_by": "operator"},
        headers=REP,
    )
    assert resp.status_code == 200, resp.text
    (approved,) = resp.json()
    assert approved["status"] == "approved" and approved["decided_at"] is not None
    body = assert_error(
        api.patch(f"/approval_queue?id=eq.{row['id']}", json={"status": "rejected"}), 400, "23514"
    )
    assert "pending" in body["message"]
    assert (
        api.get("/approval_queue", params={"id": f"eq.{row['id']}"}).json()[0]["status"]
        == "approved"
    )
    # The functions record the execution on an approved row (other columns stay writable).
    done = api.patch(
        f"/approval_queue?id=eq.{row['id']}&executed_at=is.null",
        json={"executed_at": datetime.now(UTC).isoformat(), "result": {"tx_hash": "0x01"}},
        headers=REP,
    )
    assert done.status_code == 200 and len(done.json()) == 1
    again = api.patch(
        f"/approval_queue?id=eq.{row['id']}&executed_at=is.null",
        json={"executed_at": datetime.now(UTC).isoformat()},
        headers=REP,
    )
    assert again.json() == []  # a second claim of the execution matches nothing


def test_reject(api: httpx.Client) -> None:
    row = new_approval(api)
    resp = api.patch(f"/approval_queue?id=eq.{row['id']}", json={"status": "rejected"}, headers=REP)
    assert resp.json()[0]["status"] == "rejected"


def test_pending_past_expires_at_reads_expired_and_cannot_be_approved(api: httpx.Client) -> None:
    soon = new_approval(api, expires_at=(datetime.now(UTC) + timedelta(seconds=2)).isoformat())
    past = new_approval(api, expires_at=(datetime.now(UTC) - timedelta(seconds=5)).isoformat())
    assert soon["status"] == "pending"
    by_id = {r["id"]: r for r in api.get("/approval_queue").json()}
    assert by_id[past["id"]]["status"] == "expired"
    assert by_id[soon["id"]]["status"] == "pending"
    _sleep_past(soon["expires_at"])  # no writer touches the row meanwhile
    (row,) = api.get("/approval_queue", params={"id": f"eq.{soon['id']}"}).json()
    assert row["status"] == "expired"
    assert row["decided_at"] == row["expires_at"]
    assert_error(
        api.patch(f"/approval_queue?id=eq.{soon['id']}", json={"status": "approved"}), 400, "23514"
    )
    pending = api.get("/approval_queue", params={"status": "eq.pending"}).json()
    assert pending == []


def test_approval_granted_in_time_stays_approved_after_expiry(api: httpx.Client) -> None:
    row = new_approval(api, expires_at=(datetime.now(UTC) + timedelta(seconds=2)).isoformat())
    assert api.patch(f"/approval_queue?id=eq.{row['id']}", json={"status": "approved"}).is_success
    _sleep_past(row["expires_at"])
    (got,) = api.get("/approval_queue", params={"id": f"eq.{row['id']}"}).json()
    assert got["status"] == "approved"


def _sleep_past(ts: str) -> None:
    time.sleep(max(0.0, (datetime.fromisoformat(ts) - datetime.now(UTC)).total_seconds()) + 0.2)


# --- filters, order, limit ------------------------------------------------------------------


@pytest.fixture
def three(api: httpx.Client) -> list[dict[str, Any]]:
    rows = [
        new_approval(api, user_id="alice", amount_usd=10000, risk_level="high"),
        new_approval(api, user_id="bob", amount_usd=150000, risk_level="critical"),
        new_approval(api, user_id="carol, jr", amount_usd=50000.25, risk_level="high"),
    ]
    return rows


def _users(api: httpx.Client, params: dict[str, str] | list[tuple[str, str]]) -> list[str]:
    resp = api.get("/approval_queue", params=params)
    assert resp.status_code == 200, resp.text
    return [r["user_id"] for r in resp.json()]


def test_filters(api: httpx.Client, three: list[dict[str, Any]]) -> None:
    by_amount = {"order": "amount_usd.asc"}
    assert _users(api, {"user_id": "eq.alice"}) == ["alice"]
    assert _users(api, {"user_id": "neq.alice", **by_amount}) == ["carol, jr", "bob"]
    assert _users(api, {"amount_usd": "gt.10000", **by_amount}) == ["carol, jr", "bob"]
    assert _users(api, {"amount_usd": "gte.10000", **by_amount}) == ["alice", "carol, jr", "bob"]
    assert _users(api, {"amount_usd": "lt.50000.25"}) == ["alice"]
    assert _users(api, {"amount_usd": "lte.50000.25", **by_amount}) == ["alice", "carol, jr"]
    assert _users(api, {"user_id": 'in.(bob,"carol, jr")', **by_amount}) == ["carol, jr", "bob"]
    assert _users(api, {"user_id": "not.in.(bob,alice)"}) == ["carol, jr"]
    assert _users(api, {"risk_level": "eq.critical"}) == ["bob"]
    assert _users(api, [("risk_level", "eq.high"), ("amount_usd", "gt.20000")]) == ["carol, jr"]
    assert _users(api, {"decided_at": "is.null", **by_amount}) == ["alice", "carol, jr", "bob"]
    assert _users(api, {"decided_at": "not.is.null"}) == []
    assert _users(api, {"id": f"eq.{three[1]['id']}"}) == ["bob"]
    assert _users(api, {"id": f"eq.{three[1]['id'].upper()}"}) == ["bob"]
    created = three[2]["created_at"]  # carol came last
    assert _users(api, {"created_at": f"lt.{created}", **by_amount}) == ["alice", "bob"]
    assert _users(api, {"created_at": f"gte.{created}"}) == ["carol, jr"]


def test_filter_on_timestamp_with_unencoded_plus(api: httpx.Client, base_url: str) -> None:
    row = new_approval(api)
    # A "+" typed into a URL reaches the server as a space; the timestamp still parses.
    resp = api.get(f"/approval_queue?created_at=lte.{row['created_at']}")
    assert resp.status_code == 200 and [r["id"] for r in resp.json()] == [row["id"]]


def test_boolean_filters(api: httpx.Client) -> None:
    assert len(api.get("/emergency_controls", params={"omnihub_kill_switch": "eq.false"}).json())
    assert api.get("/emergency_controls", params={"omnihub_kill_switch": "is.true"}).json() == []
    assert len(api.get("/emergency_controls", params={"operator_takeover": "is.false"}).json())


def test_order_limit_offset(api: httpx.Client, three: list[dict[str, Any]]) -> None:
    assert _users(api, {"order": "amount_usd.desc"}) == ["bob", "carol, jr", "alice"]
    assert _users(api, {"order": "amount_usd.desc", "limit": "2"}) == ["bob", "carol, jr"]
    assert _users(api, {"order": "amount_usd.desc", "limit": "1", "offset": "1"}) == ["carol, jr"]
    assert _users(api, {"order": "amount_usd.asc", "offset": "2"}) == ["bob"]
    assert _users(api, {"order": "risk_level.asc,amount_usd.desc"}) == ["bob", "carol, jr", "alice"]
    assert _users(api, {"order": "decided_at.desc.nullslast,user_id"}) == [
        "alice",
        "bob",
        "carol, jr",
    ]
    assert _users(api, {"limit": "0"}) == []
    resp = api.get("/approval_queue", params={"order": "amount_usd.asc", "offset": "1"})
    assert resp.headers["content-range"] == "1-2/*"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"user_id": "like.al*"}, "PGRST100"),
        ({"user_id": "alice"}, "PGRST100"),
        ({"nope": "eq.1"}, "42703"),
        ({"id": "eq.not-a-uuid"}, "22P02"),
        ({"amount_usd": "gt.lots"}, "22P02"),
        ({"created_at": "lt.yesterday"}, "22007"),
        ({"request": "eq.{}"}, "42883"),
        ({"user_id": "is.maybe"}, "PGRST100"),
        ({"user_id": "is.true"}, "42804"),
        ({"user_id": "in.alice"}, "PGRST100"),
        ({"user_id": 'in.("alice)'}, "PGRST100"),
        ({"or": "(user_id.eq.a,user_id.eq.b)"}, "PGRST100"),
        ({"order": "nope.desc"}, "42703"),
        ({"order": "user_id.sideways"}, "PGRST100"),
        ({"limit": "-1"}, "PGRST100"),
        ({"limit": "ten"}, "PGRST100"),
        ({"offset": "1.5"}, "PGRST100"),
    ],
)
def test_bad_query_is_400(api: httpx.Client, params: dict[str, str], code: str) -> None:
    body = assert_error(api.get("/approval_queue", params=params), 400, code)
    assert len(body["message"]) < 300


# --- bad input to writes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "PGRST102"),
        (b"", "PGRST102"),
        (b"[1, 2]", "PGRST102"),
        (b'"text"', "PGRST102"),
        (b'{"omnihub_kill_switch": NaN}', "PGRST102"),
        (b"\xff\xfe{}", "PGRST102"),
        (b"[" * 100_000, "PGRST102"),
        (b"{}", "PGRST102"),
        (b'{"omnihub_kill_switch": "yes"}', "22P02"),
        (b'{"omnihub_kill_switch": 1}', "22P02"),
        (b'{"allowed_operations": "execute_trade"}', "22P02"),
        (b'{"allowed_operations": [1, 2]}', "22P02"),
        (b'{"reason": 5}', "22P02"),
        (b'{"omnihub_kill_switch": null}', "23502"),
        (b'{"updated_at": "soon"}', "22P02"),
        (b'{"no_such_column": true}', "PGRST204"),
        (b'{"OMNIHUB_KILL_SWITCH": true}', "PGRST204"),
        (b'{"reason": "a\\u0000b"}', "22P02"),
    ],
)
def test_bad_patch_body_is_400_and_changes_nothing(
    api: httpx.Client, body: bytes, code: str
) -> None:
    before = controls(api)
    resp = api.patch(
        f"/emergency_controls?{ROW}",
        content=body,
        headers={"Content-Type": "application/json", **REP},
    )
    assert_error(resp, 400, code)
    assert controls(api) == before
    assert audit(api) == []


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ({"user_id": "u", "action": "execute_trade", "risk_level": "high"}, "23502"),
        ({"user_id": "u", "action": "t", "amount_usd": -1, "risk_level": "high"}, "23514"),
        ({"user_id": "u", "action": "t", "amount_usd": "10", "risk_level": "high"}, "22P02"),
        ({"user_id": "u", "action": "t", "amount_usd": True, "risk_level": "high"}, "22P02"),
        ({"user_id": "u", "action": "t", "amount_usd": 1, "risk_level": "huge"}, "23514"),
        (
            {"user_id": "u", "action": "t", "amount_usd": 1, "risk_level": "low", "status": "x"},
            "23514",
        ),
        (
            {"user_id": "u", "action": "t", "amount_usd": 1, "risk_level": "low", "id": "nope"},
            "22P02",
        ),
        (
            {"user_id": "u", "action": "t", "amount_usd": 1, "risk_level": "low", "expires_at": 5},
            "22P02",
        ),
        ({"user_id": None, "action": "t", "amount_usd": 1, "risk_level": "low"}, "23502"),
    ],
)
def test_bad_approval_insert_is_400_and_inserts_nothing(
    api: httpx.Client, row: dict[str, Any], code: str
) -> None:
    assert_error(api.post("/approval_queue", json=row), 400, code)
    assert api.get("/approval_queue").json() == []


def test_duplicate_id_is_409(api: httpx.Client) -> None:
    row = new_approval(api)
    dup = {k: row[k] for k in ("id", "user_id", "action", "amount_usd", "risk_level")}
    assert_error(api.post("/approval_queue", json=dup), 409, "23505")


def test_one_megabyte_body_is_400_and_changes_nothing(api: httpx.Client) -> None:
    before = controls(api)
    huge = json.dumps({"reason": "x" * (1024 * 1024)}).encode()
    body = assert_error(
        api.patch(
            f"/emergency_controls?{ROW}", content=huge, headers={"Content-Type": "application/json"}
        ),
        400,
        "PGRST102",
    )
    assert "too large" in body["message"]
    # Without a Content-Length (chunked), the limit holds too.
    chunks = (huge[i : i + 65536] for i in range(0, len(huge), 65536))
    resp = api.patch(
        f"/emergency_controls?{ROW}", content=chunks, headers={"Content-Type": "application/json"}
    )
    assert_error(resp, 400, "PGRST102")
    assert controls(api) == before
    # ... and the server still answers normally afterwards.
    assert api.get("/emergency_controls").status_code == 200


def test_wrong_content_type_is_415(api: httpx.Client) -> None:
    resp = api.patch(
        f"/emergency_controls?{ROW}",
        content=b'{"omnihub_kill_switch": true}',
        headers={"Content-Type": "text/plain"},
    )
    assert_error(resp, 415, "PGRST107")
    assert controls(api)["omnihub_kill_switch"] is False


def test_audit_logs_cannot_be_written_over_the_api(api: httpx.Client) -> None:
    api.patch(f"/emergency_controls?{ROW}", json={"reason": "real"})
    (entry,) = audit(api)
    assert_error(
        api.post("/audit_logs", json={"action": "forged", "resource_type": "emergency_controls"}),
        403,
        "42501",
    )
    assert_error(
        api.patch(f"/audit_logs?id=eq.{entry['id']}", json={"action": "forged"}), 403, "42501"
    )
    assert audit(api) == [entry]


def test_unknown_table_path_and_method(api: httpx.Client) -> None:
    assert_error(api.get("/users"), 404, "PGRST205")
    assert_error(api.get("/../../etc/passwd"), 404)
    assert_error(api.get("/rest/v2/emergency_controls"), 404)
    assert_error(api.delete(f"/emergency_controls?{ROW}"), 405, "PGRST117")
    assert_error(api.put(f"/emergency_controls?{ROW}", json={}), 405, "PGRST117")
    assert len(controls(api)) > 0


def test_emergency_controls_row_can_be_inserted_to_drill_c1(api: httpx.Client) -> None:
    # A second row is how a drill makes "not exactly one row" (C1); it must be possible.
    resp = api.post("/emergency_controls", json={"reason": "second row"}, headers=REP)
    assert resp.status_code == 201
    assert len(api.get("/emergency_controls").json()) == 2


def test_single_object_insert_of_two_rows_is_406_and_inserts_nothing(api: httpx.Client) -> None:
    good = {"user_id": "u", "action": "execute_trade", "amount_usd": 10, "risk_level": "low"}
    resp = api.post(
        "/approval_queue",
        json=[good, good],
        headers={**REP, "Accept": "application/vnd.pgrst.object+json"},
    )
    assert_error(resp, 406, "PGRST116")
    assert api.get("/approval_queue").json() == []
