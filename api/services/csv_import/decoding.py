"""Incremental UTF-8 decoding and line cutting for csv.reader, with line numbers for errors."""

from __future__ import annotations

import codecs
import io
from collections import deque
from collections.abc import Iterator
from functools import partial
from itertools import chain

from api.errors import AppError
from api.services.csv_import.errors import bad

MAX_LINE_CHARS = 16 * 1024 * 1024
# csv.reader's own limit (131,072 by default) would refuse long cells with a misleading message.
MAX_CELL_CHARS = MAX_LINE_CHARS

_line_reader = partial(io.StringIO, newline="")


class TextDecoder:
    """Incremental UTF-8 (BOM optional) decoding that knows which line an error is on."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.newlines = 0
        # The pieces handed to csv.reader since the current batch began, as (first line - 1,
        # last line, text): an error is located by reading them again (see locating.py).
        self._kept: deque[tuple[int, int, str]] = deque()
        self._lines_out = 0

    def texts(self, blocks: Iterator[bytes]) -> Iterator[str]:
        for block in blocks:
            text = self._decode(block, final=False)
            if text:
                yield text
        text = self._decode(b"", final=True)
        if text:
            yield text

    def _decode(self, block: bytes, *, final: bool) -> str:
        try:
            text: str = self._decoder.decode(block, final)
        except UnicodeDecodeError as exc:
            line = self.newlines + exc.object[: exc.start].count(b"\n") + 1
            raise bad(
                "CSV_ENCODING",
                f"Line {line} is not valid UTF-8; save the file as 'CSV UTF-8' and upload it again",
                {"line": line},
            ) from None
        nul = text.find("\x00")
        if nul >= 0:
            line = self.newlines + text.count("\n", 0, nul) + 1
            raise bad(
                "CSV_ENCODING",
                f"Line {line} contains a NUL character; this is not a text CSV file",
                {"line": line},
            )
        self.newlines += text.count("\n")
        return text

    def lines(self, texts: Iterator[str]) -> Iterator[str]:
        """Physical lines for csv.reader, which ends a record at the end of each string.

        StringIO splits the lines in C; a Python generator yielding each line cost ~15% of an
        import's CPU time.
        """
        return chain.from_iterable(map(_line_reader, self._whole_lines(texts)))

    def _whole_lines(self, texts: Iterator[str]) -> Iterator[str]:
        """The text re-cut after line breaks, so that no line straddles two pieces."""
        pending = ""
        for block in texts:
            text = pending + block if pending else block
            cut = text.rfind("\n") + 1 or text.rfind("\r") + 1
            if not cut:
                if len(text) > MAX_LINE_CHARS:
                    raise self._too_long()
                pending = text
                continue
            pending = text[cut:]
            yield self._keep(text[:cut] if pending else text)
        if pending:
            yield self._keep(pending)

    def _keep(self, piece: str) -> str:
        lines = piece.count("\n")
        if "\r" in piece:
            lines += piece.count("\r") - piece.count("\r\n")
        if not piece.endswith(("\n", "\r")):
            lines += 1  # the file's last line, without a line break
        self._kept.append((self._lines_out, self._lines_out + lines, piece))
        self._lines_out += lines
        return piece

    def keep_from(self, line: int) -> None:
        """Forget the pieces that end before `line`; the reader will not fail inside them."""
        while self._kept and self._kept[0][1] < line:
            self._kept.popleft()

    def kept_lines(self, first: int, last: int) -> list[str]:
        """Lines `first`..`last` (1-based, as csv.reader's line_num counts them) still kept."""
        out: list[str] = []
        for before, end, piece in self._kept:
            if end < first or before >= last:
                continue
            lines = list(_line_reader(piece))
            out.extend(lines[max(first - before - 1, 0) : last - before])
        return out

    def _too_long(self) -> AppError:
        line = self.newlines + 1
        return bad(
            "CSV_MALFORMED",
            f"Line {line} is longer than {MAX_LINE_CHARS} characters",
            {"line": line},
        )
