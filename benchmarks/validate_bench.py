"""Speed of loading the shipped YAML, measured by hand (not a test).

Run:  .venv/bin/python benchmarks/validate_bench.py

Loads every file of the standard folders as `omnidrill validate` does (Jinja2 with its line
map, YAML with positions, typed models), best of several rounds, three ways:
1. as shipped: libyaml parses, the line map is kept;
2. without the line map (templates rendered plainly), to show what the map costs;
3. with the pure-Python YAML parser, as before libyaml was used.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import yaml

    from omnidrill.observe.source import OBSERVE_KINDS, validation_variables
    from omnidrill.profile import development_profile, template_variables
    from omnidrill.spec import template, yamlpos
    from omnidrill.spec.kinds import kind_from_folder
    from omnidrill.spec.loader import discover, validate_paths

    context = template_variables(development_profile(), {})
    observe = validation_variables(ROOT, context)

    def variables_for(path: Path) -> dict:
        kind = kind_from_folder(path)
        if kind is not None and kind.name == "target":
            return {}
        return observe if kind is not None and kind.name in OBSERVE_KINDS else context

    files = discover(ROOT)
    print(f"{platform.platform()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"load average {os.getloadavg()[0]:.1f}; {len(files)} files")

    def best(label: str, rounds: int = 15) -> None:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            loaded, problems = validate_paths(files, variables_for)
            times.append(time.perf_counter() - t0)
        assert not problems and len(loaded) == len(files), problems
        print(f"{label:<48} {min(times) * 1000:7.1f} ms (best of {rounds})")

    best("as shipped (libyaml, line map)")
    marked = template._with_markers
    template._with_markers = lambda text: None  # type: ignore[assignment]
    best("without the line map")
    template._with_markers = marked  # type: ignore[assignment]
    yamlpos._FAST = yaml.SafeLoader
    best("pure-Python YAML parser")


if __name__ == "__main__":
    main()
