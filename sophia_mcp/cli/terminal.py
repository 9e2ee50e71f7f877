"""Tables for people: the numbers always show, text gives way.

rich shares out a narrow terminal by shrinking columns, numbers included (at 80 columns a health table lost its
scores). A `Report` gives each number column the width its values need and shares out what is left among the text
columns, each cut with an ellipsis; piped to a file or another program, nothing is cut and no box is drawn in
anything but ASCII.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

# What a text column keeps at the least, however narrow the terminal.
NARROWEST_TEXT = 8
# A pipe or a file has no edge: lines there are as long as what they say.
UNBOUNDED = 10_000


def console_for(stderr: bool = False) -> Console:
    """A console for the CLI: the terminal's width on a terminal; elsewhere no width, so nothing is cut or folded."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.width = UNBOUNDED
    return console


@dataclass(frozen=True)
class Column:
    header: str
    number: bool = False  # right-aligned, never cut
    keep: bool = False  # never cut (a channel, a status): text as short as a number
    share: int = 1  # a text column's part of the width the kept columns leave

    @property
    def kept(self) -> bool:
        return self.number or self.keep


@dataclass
class Report:
    title: str
    columns: list[Column]
    rows: list[list[Text | str]] = field(default_factory=list)

    def add(self, *cells: Text | str) -> None:
        self.rows.append(list(cells))

    def print(self, console: Console, empty: str = "") -> None:
        """Print the table, or `empty` (what would fill it) when it has no rows."""
        if not self.rows and empty:
            console.print(Text(empty), soft_wrap=True)
            return
        console.print(self.table(console))

    def table(self, console: Console) -> Table:
        piped = not console.is_terminal
        table = Table(title=self.title, box=box.ASCII if piped else box.HEAVY_HEAD)
        widths = self._text_widths(console.width) if not piped else {}
        for index, column in enumerate(self.columns):
            if column.kept:
                table.add_column(
                    column.header, justify="right" if column.number else "left", no_wrap=True,
                    min_width=self._natural(index),
                )  # fmt: skip
            elif piped:
                table.add_column(column.header, no_wrap=True)
            else:
                table.add_column(column.header, no_wrap=True, overflow="ellipsis", max_width=widths[index])
        for row in self.rows:
            table.add_row(*row)
        return table

    def _natural(self, index: int) -> int:
        cells = [Text.from_markup(c) if isinstance(c, str) else c for c in (row[index] for row in self.rows)]
        return max([len(self.columns[index].header), *(c.cell_len for c in cells)])

    def _text_widths(self, total: int) -> dict[int, int]:
        """Each text column's width: what the numbers and the borders leave, shared out by `share`; a column that
        needs less than its part keeps only what it needs, and the others share the rest."""
        numbers = sum(self._natural(i) for i, c in enumerate(self.columns) if c.kept)
        pending = [i for i, c in enumerate(self.columns) if not c.kept]
        left = max(NARROWEST_TEXT * len(pending), total - (3 * len(self.columns) + 1) - numbers)
        widths: dict[int, int] = {}
        while pending:
            shares = sum(self.columns[i].share for i in pending)
            fitting = [i for i in pending if self._natural(i) * shares <= left * self.columns[i].share]
            if not fitting:
                widths |= {i: max(NARROWEST_TEXT, left * self.columns[i].share // shares) for i in pending}
                break
            for i in fitting:
                widths[i] = self._natural(i)
                left -= widths[i]
                pending.remove(i)
        return widths
