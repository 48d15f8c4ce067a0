"""How a CSV file is written: its encoding, its delimiter, and what its headers mean.

Detection looks at bytes the reader has already seen (the BOM, one full pass that checks UTF-8,
a decoded sample for the delimiter), so it costs no extra read of the file. Every guess can be
overridden in the trigger's config.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DELIMITERS = (",", ";", "\t", "|")
SAMPLE_BYTES = 64 * 1024
_CHUNK = 1024 * 1024
_SAMPLE_RECORDS = 50

# Windows itself maps the five bytes cp1252 leaves undefined to the same code points as
# latin-1, so an Excel export containing one still decodes the way Excel showed it.
_WINDOWS_ERRORS = "nextstep-cp1252"


def _windows_passthrough(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error(_WINDOWS_ERRORS, _windows_passthrough)

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


# Byte sequences other files start with: a file named .csv that starts so is not one.
_MAGIC = (
    (
        b"PK\x03\x04",
        "a ZIP archive (an Excel .xlsx workbook?): save it as CSV, or name it .xlsx",
    ),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel .xls (OLE2) file: save it as CSV or .xlsx"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive: unpack it first"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
)
# Control characters no text export contains (TAB, LF, FF, CR and ESC aside); binary data is
# about one byte in nine of them, a text file none or a stray one.
_CONTROL = bytes([*range(0, 9), 11, *range(14, 27), *range(28, 32), 127])
_BINARY_SHARE = 0.02
_BINARY_LEAST = 8  # so that a short text with one stray control character is still text


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What one pass over a file's bytes tells: its content hash, size and encoding, and
    ``problem``: why it is no CSV file at all (binary content), empty when it may be one."""

    sha256: str
    size: int
    encoding: str
    errors: str = "strict"
    problem: str = ""


def encoding_from_bom(head: bytes) -> str | None:
    """The codec a byte-order mark at the start of ``head`` announces, if any."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec
    return None


def text_errors(encoding: str) -> str:
    """The decode error handler to open a file of ``encoding`` with."""
    normal = codecs.lookup(encoding).name
    return _WINDOWS_ERRORS if normal == "cp1252" else "strict"


def _share(data: bytes, value: int = 0) -> float:
    return data.count(value) / len(data) if data else 0.0


def wide_encoding(head: bytes) -> str | None:
    """UTF-16 or UTF-32 without a byte-order mark, told by where the NUL bytes are: text in
    those encodings has a NUL in (nearly) every high byte of its ASCII characters."""
    if len(head) < 8 or head.count(0) * 8 < len(head):
        return None
    even = head[: len(head) - len(head) % 4]
    lanes = [_share(even[i::4]) for i in range(4)]
    found = None
    if min(lanes[1:]) > 0.9 and lanes[0] < 0.05:
        found = "utf-32-le"
    elif min(lanes[:3]) > 0.9 and lanes[3] < 0.05:
        found = "utf-32-be"
    else:
        low, high = _share(even[0::2]), _share(even[1::2])
        if high > 0.3 and low < 0.05:
            found = "utf-16-le"
        elif low > 0.3 and high < 0.05:
            found = "utf-16-be"
    if found is not None:
        try:
            codecs.getincrementaldecoder(found)().decode(even)
        except UnicodeDecodeError:
            return None
    return found


def binary_problem(head: bytes) -> str:
    """Why bytes that start a file cannot be CSV text (empty when they may be)."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return f"not a CSV file: {what}"
    controls = len(head) - len(head.translate(None, _CONTROL))
    if controls >= _BINARY_LEAST and controls / len(head) > _BINARY_SHARE:
        nul = head.find(0)
        where = f"; a NUL byte at offset {nul}" if nul >= 0 else ""
        share = 100 * controls / len(head)
        return f"not a CSV file: binary content ({share:.0f}% control bytes{where})"
    return ""


def _is_wide(encoding: str) -> bool:
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


def inspect_file(path: Path, encoding: str | None = None) -> FileFacts:
    """Hash the file and settle its encoding in one streaming pass (constant memory).

    Without an override: a BOM decides (UTF-8, UTF-16, UTF-32); else where NUL bytes stand
    (UTF-16/32 without BOM); otherwise the whole file is checked as UTF-8, and Windows-1252 is
    the fallback, as Excel writes it on Windows. Binary content (an archive, an image, control
    bytes no export has) is named in ``problem``.
    """
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    size = 0
    head = b""
    with path.open("rb") as raw:
        while chunk := raw.read(_CHUNK):
            if not head:
                head = chunk[:SAMPLE_BYTES]
            digest.update(chunk)
            size += len(chunk)
            if utf8 and encoding is None:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8 and encoding is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    chosen = (
        encoding
        or encoding_from_bom(head)
        or wide_encoding(head)
        or ("utf-8" if utf8 else "cp1252")
    )
    problem = "" if _is_wide(chosen) else binary_problem(head)
    return FileFacts(digest.hexdigest(), size, chosen, text_errors(chosen), problem)


def _records(sample: str, delimiter: str, complete: bool) -> list[list[str]]:
    reader = csv.reader(io.StringIO(sample), delimiter=delimiter)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if row:
                rows.append(row)
            if len(rows) > _SAMPLE_RECORDS:
                break
    except csv.Error:
        pass
    if not complete and len(rows) > 1:
        rows.pop()  # the sample may end in the middle of this record
    return rows


def detect_delimiter(sample: str, complete: bool = False) -> str:
    """Pick the delimiter among ``, ; TAB |`` that splits the header into the most columns
    while the following records have that same number of fields.

    ``complete`` says the sample is the whole file (its last record is not cut off).
    """
    best, best_score = ",", (0.0, 1)
    for delimiter in DELIMITERS:
        rows = _records(sample, delimiter, complete)
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        body = rows[1:]
        agree = sum(1 for r in body if len(r) == width) / len(body) if body else 1.0
        score = (agree, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


_NOT_WORD = re.compile(r"[^\w]+")


def normalise_header(name: str) -> str:
    """`` First Name `` → ``first_name``: trimmed, case-folded, other runs of non-letters
    and non-digits become one underscore."""
    return _NOT_WORD.sub("_", name.strip().casefold()).strip("_")


def header_aliases(mapping: Mapping[str, str | Sequence[str]]) -> dict[str, str]:
    """Turn the config's ``{field: header or [headers]}`` into ``{normalised header: field}``."""
    aliases: dict[str, str] = {}
    for field, names in mapping.items():
        for name in [names] if isinstance(names, str) else names:
            aliases[normalise_header(name)] = field
    return aliases


def field_names(raw: Sequence[str], aliases: Mapping[str, str]) -> list[str]:
    """The event field name of each header cell: mapped if the config names it, else the
    normalised header; empty headers become ``column_N`` and repeats get ``_2``, ``_3``…

    Mapped columns claim their names first, so ``{phone: Mobile}`` wins over a ``Phone``
    column the config did not ask for.
    """
    keys = [normalise_header(cell) for cell in raw]
    names: list[str | None] = [aliases.get(key) for key in keys]
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name is not None:
            names[index] = _unique(name, seen)
    for index, key in enumerate(keys):
        if names[index] is None:
            names[index] = _unique(key or f"column_{index + 1}", seen)
    return [name or "" for name in names]


def _unique(name: str, seen: set[str]) -> str:
    unique, n = name, 1
    while unique in seen:
        n += 1
        unique = f"{name}_{n}"
    seen.add(unique)
    return unique
