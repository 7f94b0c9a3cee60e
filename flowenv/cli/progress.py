"""Progress display for long operations, shown on a terminal only (rich, imported lazily)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn


class JobProgress:
    """A spinner and an n-of-m bar over jobs whose count is known once planned."""

    def __init__(self, verb: str) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn(f"{verb} {{task.description}}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("", total=None)

    def __enter__(self) -> JobProgress:
        self._progress.start()
        return self

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self._progress.stop()

    def plan(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def done(self, label: str) -> None:
        self._progress.update(self._task, advance=1, description=label)
