"""Reports of a run: journal → report.html, junit.xml, summary.md; the history index.

```python
from omnidrill.report import write_reports, update_index
written = write_reports(Path("reports/20261125T180000Z-local/journal.json"))
update_index(Path("reports"))     # reports/index.html and reports/latest
```
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use: the charts pull in matplotlib, which every CLI start would pay for.
_EXPORTS = {
    "FORMATS": "omnidrill.report.write",
    "Written": "omnidrill.report.write",
    "publish": "omnidrill.report.write",
    "write_reports": "omnidrill.report.write",
    "update_index": "omnidrill.report.history",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'omnidrill.report' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
