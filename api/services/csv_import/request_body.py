"""The uploaded file's bytes, read on the event loop from a raw CSV body or a multipart field."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from api.services.byte_stream import coalesce
from api.services.csv_import.errors import bad

BLOCK_BYTES = 256 * 1024
RAW_MEDIA_TYPES = {
    "",
    "text/csv",
    "text/plain",
    "text/tab-separated-values",
    "application/csv",
    "application/octet-stream",
    "application/vnd.ms-excel",
}


class _MultipartFile:
    """Push-parses multipart/form-data and keeps only the bytes of the field named ``file``."""

    def __init__(self, boundary: bytes) -> None:
        self.out: list[bytes] = []
        self.found = False
        self.file_parts = 0
        self.ended = False
        self._in_file = False
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def _part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if options.get(b"name") == b"file" or b"filename" in options:
            self.file_parts += 1
        if self.file_parts > 1:
            # Importing one and dropping the other would lose rows without a word.
            raise bad(
                "MULTIPLE_FILES",
                "The multipart upload has more than one file; send one CSV per request",
            )
        if options.get(b"name") == b"file":
            self.found = True
            self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.out.append(data[start:end])

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self.ended = True


async def _multipart_blocks(request: Request, boundary: bytes) -> AsyncIterator[bytes]:
    if not boundary:
        raise bad("VALIDATION_ERROR", "multipart/form-data upload without a boundary")
    form = _MultipartFile(boundary)
    async for chunk in request.stream():
        try:
            form.parser.write(chunk)
        except MultipartParseError as exc:
            raise bad("VALIDATION_ERROR", f"Malformed multipart body: {exc}", status=400) from exc
        if form.out:
            data = b"".join(form.out)
            form.out.clear()
            yield data
    form.parser.finalize()
    if not form.found:
        raise bad(
            "VALIDATION_ERROR",
            "The multipart upload has no field named 'file'; send the CSV as the 'file' field",
        )
    if not form.ended:
        raise bad(
            "UPLOAD_INCOMPLETE",
            "The multipart upload ended before its closing boundary",
            status=400,
        )


async def body_blocks(request: Request) -> AsyncGenerator[bytes, None]:
    """The uploaded file's bytes, from a multipart ``file`` field or a raw CSV body, coalesced."""
    media, options = parse_options_header(request.headers.get("content-type"))
    media_type = media.decode("latin-1").lower()
    source: AsyncIterator[bytes]
    if media_type == "multipart/form-data":
        source = _multipart_blocks(request, options.get(b"boundary", b""))
    elif media_type in RAW_MEDIA_TYPES:
        source = request.stream()
    else:
        raise bad(
            "UNSUPPORTED_MEDIA_TYPE",
            f"Send the CSV as multipart/form-data (field 'file') or as a text/csv body, not {media_type}",
            status=415,
        )
    async for block in coalesce(source, BLOCK_BYTES):
        yield block
