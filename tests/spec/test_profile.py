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


def test_a_file_name_is_found_under_targets(tmp_path: Path) -> None:
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "staging.yaml").write_text("name: staging\n")
    found = tmp_path / "targets" / "staging.yaml"
    assert profile_path("staging.yaml", root=tmp_path) == found
    assert profile_path("staging", root=tmp_path) == found


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        (
            "nowhere",
            "target profile 'nowhere' not found (no targets/nowhere.yaml). The profiles under "
            "targets/: staging, supabase-local. `omnidrill up` starts the reference stack and "
            "writes targets/local.yaml.",
        ),
        (
            "stagin.yaml",
            "target profile 'stagin.yaml' not found (no stagin.yaml nor targets/stagin.yaml); "
            "did you mean 'staging'? The profiles under targets/: staging, supabase-local. "
            "`omnidrill up` starts the reference stack and writes targets/local.yaml.",
        ),
        (
            "targets",
            "target profile 'targets' is a folder: give a profile file or a name under "
            "targets/. The profiles under targets/: staging, supabase-local. `omnidrill up` "
            "starts the reference stack and writes targets/local.yaml.",
        ),
    ],
)
def test_a_missing_profile_says_what_there_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arg: str, message: str
) -> None:
    (tmp_path / "targets").mkdir()
    for name in ("staging", "supabase-local"):
        (tmp_path / "targets" / f"{name}.yaml").write_text(f"name: {name}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as exc:
        load_profile(arg)
    assert str(exc.value) == message


def test_no_targets_folder_says_where_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as exc:
        load_profile("local")
    assert "There is no targets/ here: run from the project folder or give a path" in str(exc.value)


def test_template_fields_named_like_dict_methods(tmp_path: Path) -> None:
    """`target.keys` is the profile's `keys`, not dict.keys; dict methods still work."""
    from omnidrill.profile import development_profile, template_variables
    from omnidrill.spec.template import render

    context = template_variables(development_profile(), {})
    text = (
        "a: {{ target.keys.anon.value }}\n"
        "b: {{ target.keys.items() | list | length }}\n"
        "c: {{ target['keys']['service_role'].value }}\n"
        "d: {{ target.faults.proxies[0].name }}\n"
        "e: {{ target | tojson | length > 100 }}\n"
    )
    rendered, problems, _ = render(text, "t.yaml", context)
    assert not problems
    assert rendered == "a: dev-anon-key\nb: 2\nc: dev-sr-key\nd: rpc_primary\ne: True\n"


def test_watch_secrets_are_read_scrubbed_and_named_by_their_variable(tmp_path: Path) -> None:
    text = (ROOT / "targets" / "staging.yaml").read_text()
    text += "\nwatch_secrets: [{env: ALCHEMY_API_KEY}]\n"
    path = tmp_path / "targets" / "w.yaml"
    path.parent.mkdir()
    path.write_text(text)
    profile = load_profile(str(path))
    env = {ref.env: f"secret-{i:04d}-value" for i, (_, ref) in enumerate(profile.secret_refs())}
    with pytest.raises(UsageError, match=r"ALCHEMY_API_KEY \(for watch_secrets.0\)"):
        resolve(profile, environ={k: v for k, v in env.items() if k != "ALCHEMY_API_KEY"})
    resolved = resolve(profile, environ=env)
    assert resolved.watched == {"ALCHEMY_API_KEY": env["ALCHEMY_API_KEY"]}
    assert secrets.scrub(f"key {env['ALCHEMY_API_KEY']}") == "key ***"
