"""Which audio formats a recording may be in, told by its first bytes (not its name or headers)."""

from __future__ import annotations

from typing import Final

# Enough for every signature below.
SNIFF_BYTES: Final = 16
ACCEPTED: Final = "WAV, MP3, OGG, FLAC, M4A/MP4 or WebM"


def audio_format(head: bytes) -> str | None:
    """The format name (`wav`, `mp3`, `ogg`, `flac`, `mp4`, `webm`) or None if not one of them."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        # EBML: WebM (or Matroska audio, which Deepgram reads the same way).
        return "webm"
    if head[:3] == b"ID3":
        return "mp3"
    # An MPEG audio frame without ID3 tags: 11 sync bits, then a layer that is not "reserved".
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "mp3"
    return None


MIME_TYPES: Final = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "mp4": "audio/mp4",
    "webm": "audio/webm",
}
