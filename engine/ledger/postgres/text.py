"""Any Python text through PostgreSQL's ``text``, which cannot hold NUL (U+0000).

Every string sent is escaped and every ``text`` value read back unescaped, on each connection
of the store (:func:`register`), so no query can forget it: U+FFFF (a noncharacter, never in
real text) is the escape, doubled for itself and followed by ``0`` for a NUL. Text with neither
character, that is all real text, is stored as it is and reads the same in ``psql``.
"""

from __future__ import annotations

import re

from psycopg import Connection
from psycopg.adapt import Buffer
from psycopg.types.string import StrBinaryDumper, StrDumper, TextBinaryLoader, TextLoader

ESCAPE = "\uffff"
_ESCAPED = re.compile(ESCAPE + "(.)", re.DOTALL)


def escape(text: str) -> str:
    """``text`` with NUL and the escape character replaced (see the module docstring)."""
    if "\x00" in text or ESCAPE in text:
        return text.replace(ESCAPE, ESCAPE + ESCAPE).replace("\x00", ESCAPE + "0")
    return text


def _unescaped(match: re.Match[str]) -> str:
    return ESCAPE if match.group(1) == ESCAPE else "\x00"


def unescape(text: str) -> str:
    """The text :func:`escape` was given."""
    return _ESCAPED.sub(_unescaped, text) if ESCAPE in text else text


class _Dumper(StrDumper):
    def dump(self, obj: str) -> Buffer | None:
        return escape(obj).encode()


class _BinaryDumper(StrBinaryDumper):
    def dump(self, obj: str) -> Buffer | None:
        return escape(obj).encode()


class _Loader(TextLoader):
    def load(self, data: Buffer) -> str:
        return unescape(str(data, "utf-8"))


class _BinaryLoader(TextBinaryLoader):
    def load(self, data: Buffer) -> str:
        return unescape(str(data, "utf-8"))


def register(conn: Connection[tuple[object, ...]]) -> None:
    """Use the escaping adapters for every string on ``conn`` (a UTF-8 connection)."""
    adapters = conn.adapters
    adapters.register_dumper(str, _Dumper)
    adapters.register_dumper(str, _BinaryDumper)
    for name in ("text", "varchar"):
        adapters.register_loader(name, _Loader)
        adapters.register_loader(name, _BinaryLoader)
