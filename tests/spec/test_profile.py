"""Target profiles: secrets from the environment, dev-only literals, name resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnidrill import secrets
from omnidrill.cliutil import load_profile, parse_vars
from omnidrill.errors import UsageError
from omnidrill.profile import profile_path, resolve
from omnidrill.spec.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]


def test_staging_profile_needs_its_environment_variables() -> None:
    profile = load_profile(str(ROOT / "targets" / "staging.yaml"))
    with pytest.raises(UsageError) as exc:
        resolve(profile, environ={"OMNIHUB_STAGING_ANON_KEY": "a-key-1234"})
    msg = str(exc.value)
    assert "OMNIHUB_STAGING_SERVICE_ROLE_KEY (for keys.service_role)" in msg
    assert "CF_ACCESS_CLIENT_SECRET (for headers.CF-Access-Client-Secret)" in msg
    assert "OMNIHUB_STAGING_ANON_KEY" not in msg


def test_resolved_secrets_are_scrubbed_everywhere() -> None:
    profile = load_profile(str(ROOT / "targets" / "staging.yaml"))
    env = {ref.env: f"secret-{i:04d}-value" for i, (_, ref) in enumerate(profile.secret_refs())}
    resolved = resolve(profile, environ=env)
    assert resolved.anon_key == env["OMNIHUB_STAGING_ANON_KEY"]
    assert resolved.headers["CF-Access-Client-Id"] == env["CF_ACCESS_CLIENT_ID"]
    leaked = f"request failed with apikey {resolved.service_role_key} at postgres://u:pw@h/db"
    assert secrets.scrub(leaked) == "request failed with apikey *** at postgres://u:***@h/db"


def test_literal_secret_refused_outside_dev(tmp_path: Path) -> None:
    text = (ROOT / "targets" / "staging.yaml").read_text()
    text = text.replace("anon: {env: OMNIHUB_STAGING_ANON_KEY}", "anon: {value: hardcoded}")
    path = tmp_path / "targets" / "s.yaml"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_profile(str(path))
    assert "only allowed when environment is dev" in str(exc.value)
    assert "keys.anon" in str(exc.value)


def test_profile_argument_is_path_or_name(tmp_path: Path) -> None:
    assert profile_path("staging", root=tmp_path) == tmp_path / "targets" / "staging.yaml"
    assert profile_path("x/y.yaml") == Path("x/y.yaml")


def test_missing_profile_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="target profile 'nowhere' not found"):
        load_profile("nowhere")


def test_parse_vars_types() -> None:
    assert parse_vars(["a=20", "b=true", "c=text", "d=", "e=[1]"]) == {
        "a": 20,
        "b": True,
        "c": "text",
        "d": "",
        "e": "[1]",
    }
