"""Where a csv.Error really is: the cell over the size limit, or the quote that never closes.

csv.reader only says how many lines it had consumed when it gave up. An unclosed quote swallows
every later line into one cell, so that count points far below the mistake (line 11,793 for a
quote opened on line 3). On an error, and only then, the consumed lines are scanned again with
the reader's own state machine to find the line and column that started the trouble.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

QUOTE = '"'


class _State(Enum):
    start_field = auto()
    in_field = auto()
    in_quoted = auto()
    quote_in_quoted = auto()


@dataclass(frozen=True)
class Cell:
    line: int
    column: int


@dataclass(frozen=True)
class Failure:
    open_quote: Cell | None  # a quoted cell still open where the consumed text ends
    too_large: Cell | None  # the first cell longer than the limit


def _terminator_length(line: str) -> int:
    if line.endswith("\r\n"):
        return 2
    return 1 if line.endswith(("\n", "\r")) else 0


class _Scanner:
    def __init__(self, delimiter: str, max_cell: int, first_line: int) -> None:
        self.delimiter = delimiter
        self.max_cell = max_cell
        self.state = _State.start_field
        self.column = 1
        self.field_line = first_line
        self.length = 0
        self.too_large: Cell | None = None

    def _grow(self, n: int) -> None:
        self.length += n
        if self.length > self.max_cell and self.too_large is None:
            self.too_large = Cell(self.field_line, self.column)

    def _next_field(self, line_no: int, column: int) -> None:
        self.state = _State.start_field
        self.column = column
        self.field_line = line_no
        self.length = 0

    def line(self, line_no: int, line: str) -> None:
        end = len(line) - _terminator_length(line)
        pos = 0
        while pos < end:
            if self.state is _State.start_field:
                if line[pos] == QUOTE:
                    self.state = _State.in_quoted
                    pos += 1
                    continue
                self.state = _State.in_field
            if self.state is _State.in_field:
                cut = line.find(self.delimiter, pos, end)
                self._grow((end if cut < 0 else cut) - pos)
                if cut < 0:
                    break
                self._next_field(line_no, self.column + 1)
                pos = cut + 1
            elif self.state is _State.in_quoted:
                cut = line.find(QUOTE, pos, end)
                self._grow((end if cut < 0 else cut) - pos)
                if cut < 0:
                    break
                self.state = _State.quote_in_quoted
                pos = cut + 1
            else:  # just after a quote inside a quoted cell
                char = line[pos]
                if char == QUOTE:
                    self._grow(1)
                    self.state = _State.in_quoted
                elif char == self.delimiter:
                    self._next_field(line_no, self.column + 1)
                else:
                    self.state = _State.in_field
                pos += 1
        if self.state is _State.in_quoted:
            self._grow(len(line) - end)  # the line break belongs to the cell
        else:
            self._next_field(line_no + 1, 1)  # the record ends with the line


def locate_failure(lines: list[str], first_line: int, delimiter: str, max_cell: int) -> Failure:
    """Scan `lines` (numbered from `first_line`, starting at a record boundary) as csv.reader does."""
    scan = _Scanner(delimiter, max_cell, first_line)
    for line_no, line in enumerate(lines, first_line):
        scan.line(line_no, line)
    open_quote = Cell(scan.field_line, scan.column) if scan.state is _State.in_quoted else None
    return Failure(open_quote=open_quote, too_large=scan.too_large)
