"""Go encoding/json rules as the server applies them to request bodies."""

from __future__ import annotations

import pytest

from omnidrill.faults.server.gojson import GoJSONError, decode_struct, dumps, loads

FIELDS = {"name": "string", "enabled": "bool", "latency": "int64", "toxicity": "float32"}


def _decode(raw: bytes, into: dict | None = None) -> dict:
    return decode_struct(loads(raw), FIELDS, into if into is not None else {}, "T")


def test_first_value_only_and_empty_body() -> None:
    assert _decode(b'  {"name": "a"} {"name": "b"} junk') == {"name": "a"}
    with pytest.raises(GoJSONError, match=r"^EOF$"):
        loads(b"  \n")
    with pytest.raises(GoJSONError, match=r"^unexpected EOF$"):
        loads(b'{"name": ')
    with pytest.raises(GoJSONError, match="invalid character"):
        loads(b"NaN")


def test_keys_fold_case_and_null_keeps_the_default() -> None:
    assert _decode(b'{"NaMe": "x", "LATENCY": 5, "enabled": null}', {"enabled": True}) == {
        "name": "x",
        "latency": 5,
        "enabled": True,
    }
    assert _decode(b"null", {"name": "kept"}) == {"name": "kept"}
    assert _decode(b'{"unknown": [1, {"deep": true}]}') == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"latency": 1.5}', "cannot unmarshal number 1.5 into Go struct field T.latency of type"),
        (b'{"latency": 1e3}', "cannot unmarshal number 1e3 into"),
        (b'{"latency": 9223372036854775808}', "of type int64"),
        (b'{"latency": "5"}', "cannot unmarshal string into Go struct field T.latency"),
        (
            b'{"enabled": 1}',
            "cannot unmarshal number 1 into Go struct field T.enabled of type bool",
        ),
        (b'{"name": false}', "cannot unmarshal bool into Go struct field T.name of type string"),
        (b'{"toxicity": 1e39}', "of type float32"),
        (b"[1]", "cannot unmarshal array into Go value of type T"),
    ],
)
def test_wrong_types_are_errors(body: bytes, message: str) -> None:
    with pytest.raises(GoJSONError, match=message.replace(".", r"\.")):
        _decode(body)


def test_ints_and_whole_floats_are_accepted_where_go_accepts_them() -> None:
    assert _decode(b'{"latency": -5, "toxicity": 1}') == {"latency": -5, "toxicity": 1.0}
    assert _decode(b'{"toxicity": 0.25}') == {"toxicity": 0.25}


def test_dumps_is_compact_and_html_safe() -> None:
    assert dumps({"a": "<b>&", "n": [1, 2]}) == b'{"a":"\\u003cb\\u003e\\u0026","n":[1,2]}'
    assert dumps({"u": "é"}) == '{"u":"é"}'.encode()
