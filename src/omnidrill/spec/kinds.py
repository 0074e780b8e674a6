"""The YAML kinds omnidrill reads: their folders and their models."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from omnidrill.errors import UsageError


@dataclass(frozen=True)
class Kind:
    """One YAML kind; the model is imported on first use so the CLI starts fast."""

    name: str
    folder: str  # relative to the project root, "/"-separated
    model_ref: str  # "module:Class"
    description: str
    used_by: str  # what takes files of this kind, for "this is a drill: use `omnidrill run`"

    def model(self) -> type[BaseModel]:
        module_name, _, cls_name = self.model_ref.partition(":")
        try:
            module = importlib.import_module(module_name)
            return getattr(module, cls_name)  # type: ignore[no-any-return]
        except (ModuleNotFoundError, AttributeError) as exc:
            raise KindUnavailable(
                f"files of kind {self.name!r} cannot be read by this version of omnidrill "
                f"(its model {self.model_ref} is not there: {exc})"
            ) from exc


class KindUnavailable(UsageError):
    """A kind whose model this version does not have yet."""


KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind(
            "target",
            "targets",
            "omnidrill.profile:TargetProfile",
            "a target profile",
            "give it as `--target`",
        ),
        Kind(
            "drill",
            "chaos",
            "omnidrill.chaos.models:DrillFile",
            "a chaos drill",
            "use `omnidrill run`",
        ),
        Kind(
            "scenario",
            "scenarios",
            "omnidrill.scenarios:ScenarioFile",
            "a load, rate-limit or canary scenario",
            "use `omnidrill load` or `omnidrill run`",
        ),
        Kind(
            "monitor",
            "monitors",
            "omnidrill.observe.models:MonitorFile",
            "Datadog monitors",
            "use `omnidrill monitors`",
        ),
        Kind(
            "dashboard",
            "dashboards",
            "omnidrill.observe.models:DashboardFile",
            "a dashboard",
            "use `omnidrill dashboards`",
        ),
        Kind(
            "monitor_test",
            "monitors/tests",
            "omnidrill.observe.models:MonitorTestFile",
            "unit tests of monitors",
            "use `omnidrill monitors test`",
        ),
    ]
}

# Deepest folders first, so monitors/tests/x.yaml is a monitor test, not a monitor.
_BY_FOLDER = sorted(KINDS.values(), key=lambda k: -k.folder.count("/"))


def kind_from_folder(path: Path) -> Kind | None:
    """The kind a file's folder implies (`chaos/x.yaml` is a drill), or None."""
    parent = path.resolve().parent.parts
    for kind in _BY_FOLDER:
        want = tuple(kind.folder.split("/"))
        if parent[-len(want) :] == want:
            return kind
    return None


def get_kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        from omnidrill.spec.suggest import did_you_mean

        hint = did_you_mean(name, KINDS)
        raise UsageError(
            f"unknown kind {name!r}" + (hint or f"; expected one of {', '.join(KINDS)}")
        ) from None
