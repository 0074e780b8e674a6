"""Checking Datadog JSON against datadog-api-client's models, stricter than the SDK itself.

The SDK keeps unknown fields and marks bad enum values `_unparsed` instead of raising, so
both are searched for here: Datadog would drop or refuse them.
"""

from __future__ import annotations

from typing import Any

from datadog_api_client.api_client import ApiClient
from datadog_api_client.configuration import Configuration
from datadog_api_client.exceptions import ApiAttributeError, ApiTypeError, ApiValueError
from datadog_api_client.model_utils import ModelComposed, ModelNormal, ModelSimple, OpenApiModel

Loc = tuple[str | int, ...]


def _bad_parts(obj: Any, loc: Loc, out: list[tuple[Loc, str]]) -> None:
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            _bad_parts(item, (*loc, i), out)
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _bad_parts(v, (*loc, k), out)
        return
    if not isinstance(obj, OpenApiModel):
        return
    if isinstance(obj, ModelSimple):
        if obj._unparsed:
            allowed = sorted(str(v) for v in getattr(obj, "allowed_values", None) or ())
            hint = f"; expected one of {allowed}" if allowed else ""
            out.append((loc, f"value {obj.value!r} is not accepted by Datadog{hint}"))
        return
    if isinstance(obj, ModelComposed):
        inner = obj.get_oneof_instance()
        if inner is None or type(inner).__name__ == "UnparsedObject":
            data = getattr(inner, "_data_store", None) or {}
            kind = data.get("type") if isinstance(data, dict) else None
            name = type(obj).__name__
            out.append((loc, f"does not match any {name} Datadog knows (type {kind!r})"))
            return
        _bad_parts(inner, loc, out)
        return
    if isinstance(obj, ModelNormal):
        known = set(obj.openapi_types)
        for key, value in obj._data_store.items():
            if key not in known:
                out.append(((*loc, key), f"unknown field for {type(obj).__name__}"))
                continue
            _bad_parts(value, (*loc, key), out)


def check(model_cls: type[OpenApiModel], body: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Build `model_cls` from `body`; (field path, message) for everything Datadog refuses."""
    try:
        model = model_cls(**body)
    except (ApiTypeError, ApiValueError, ApiAttributeError) as exc:
        path = tuple(getattr(exc, "path_to_item", None) or ())
        return [(tuple(p for p in path if p != "received_data"), str(exc).splitlines()[0])]
    except TypeError as exc:  # a required argument missing
        return [((), str(exc).replace(".__init__()", ""))]
    out: list[tuple[Loc, str]] = []
    _bad_parts(model, (), out)
    return out


def round_trip(model_cls: type[OpenApiModel], json_text: str) -> OpenApiModel:
    """Deserialize JSON as the SDK does for API responses."""
    with ApiClient(Configuration()) as client:
        return client.deserialize(json_text, (model_cls,), True)  # type: ignore[no-any-return]
