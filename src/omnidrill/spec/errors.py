"""Problems found in a YAML file, each with where it is and what was expected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omnidrill.errors import UsageError


@dataclass(frozen=True)
class Problem:
    """One mistake in one file: where, which field, what was found and what was expected."""

    file: str
    message: str
    line: int | None = None
    column: int | None = None
    field: str = ""

    def format(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class SpecError(UsageError):
    """A file (or several) could not be loaded; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(p.format() for p in problems))


def display_path(path: Path) -> str:
    """A path relative to the working folder when it is inside it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
