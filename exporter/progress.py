"""A small progress reporter shared by every long-running stage (on top of click.progressbar).

Library functions take ``progress: Progress | None`` and report through it; only the CLI decides
whether anything is shown. Usage::

    progress = Progress(stages=2)                 # shown on stderr when it is a terminal
    with progress.stage("extract", total=len(tables)) as bar:
        for table in tables:
            bar.item(table.name)                  # what is being worked on now
            ...
            bar.advance()                         # one item done

``Progress(enabled=False)`` (or :data:`SILENT`) reports nothing; :func:`for_cli` builds the
reporter a command should use for its ``--quiet`` flag.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO

import click


class StageBar:
    """Item progress within one stage. Does nothing when the owning :class:`Progress` is silent."""

    def __init__(self, bar=None) -> None:
        self._bar = bar
        self._item: str | None = None

    def item(self, text: str | None) -> None:
        """Name the item being worked on (shown next to the bar)."""
        self._item = text
        if self._bar is not None:
            self._bar.current_item = text
            self._bar.render_progress()

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` items as done."""
        if self._bar is not None:
            self._bar.update(steps, self._item)


class Progress:
    """Reports "stage N/M: name" with an item bar on ``file`` (stderr by default).

    ``enabled=None`` means: show only when ``file`` is an interactive terminal, so logs and
    pipes stay clean. ``stages`` is the number of stages the caller expects (for "N/M").
    """

    def __init__(self, *, enabled: bool | None = None, stages: int | None = None, file: TextIO | None = None) -> None:
        self.file = file or sys.stderr
        self.enabled = _is_terminal(self.file) if enabled is None else enabled
        self.stages = stages
        self._done = 0

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[StageBar]:
        """A context for one stage; yields a :class:`StageBar` for its items."""
        self._done += 1
        if not self.enabled:
            yield StageBar()
            return
        of = f"/{self.stages}" if self.stages else ""
        label = f"stage {self._done}{of}: {name}"
        with click.progressbar(length=total or 0, label=label, file=self.file, show_pos=total is not None,
                               item_show_func=lambda item: item or "") as bar:
            yield StageBar(bar)


SILENT = Progress(enabled=False)


def for_cli(*, quiet: bool, stages: int | None = None) -> Progress:
    """The reporter a command uses: silent with ``--quiet``, otherwise shown on a terminal."""
    return Progress(enabled=False if quiet else None, stages=stages)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
