"""Reports of a run: journal → report.html, junit.xml, summary.md; the history index.

```python
from omnidrill.report import write_reports, update_index
written = write_reports(Path("reports/20261125T180000Z-local/journal.json"))
update_index(Path("reports"))     # reports/index.html and reports/latest
```
"""

from omnidrill.report.history import update_index
from omnidrill.report.write import FORMATS, Written, publish, write_reports

__all__ = ["FORMATS", "Written", "publish", "update_index", "write_reports"]
