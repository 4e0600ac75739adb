"""Collection URIs: a directory (LanceDB, embedded) or a PostgreSQL DSN with ``?collection=NAME``.

    ./my-collection                                                     LanceDB in that directory
    postgresql://user:pw@host:5432/db?collection=docs                   pgvector, table for `docs`
    postgresql://postgres@/postgres?host=/tmp/pgsock&collection=docs    ... over a Unix socket

Every other libpq parameter passes through unchanged. Passwords never appear in messages:
`redact()` replaces them with ``***``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from repspace.errors import InvalidInputError

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,47}")
PG_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class CollectionURI:
    backend: str  # "lancedb" | "pgvector"
    name: str
    path: Path | None = None  # lancedb
    dsn: str | None = None  # pgvector, without the collection parameter

    def __str__(self) -> str:
        return str(self.path) if self.backend == "lancedb" else redact(with_collection(self.dsn or "", self.name))


def is_pg(uri: str) -> bool:
    return str(uri).lower().startswith(PG_SCHEMES)


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise InvalidInputError(f"collection name {name!r} is not valid: use a letter, then letters, digits, '_' or '-' "
                                "(at most 48 characters)")
    return name


def parse_uri(uri: str | Path) -> CollectionURI:
    """Parse a collection URI; the error says what would parse."""
    text = str(uri)
    if not text.strip():
        raise InvalidInputError("empty collection URI: give a directory or postgresql://…?collection=NAME")
    if is_pg(text):
        parts = urlsplit(text)
        parts = parts._replace(scheme=parts.scheme.lower())
        query = parse_qsl(parts.query, keep_blank_values=True)
        names = [v for k, v in query if k == "collection"]
        if len(names) != 1:
            raise InvalidInputError(f"PostgreSQL collection URI {redact(text)!r} needs exactly one ?collection=NAME "
                                    "parameter, e.g. postgresql://user@host/db?collection=docs")
        rest = [(k, v) for k, v in query if k != "collection"]
        dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
        return CollectionURI("pgvector", check_name(names[0]), dsn=dsn)
    if "://" in text:
        raise InvalidInputError(f"unsupported collection URI {redact(text)!r}: use a directory (LanceDB) or "
                                "postgresql://…")
    path = Path(text)
    name = path.resolve().name
    return CollectionURI("lancedb", name if NAME_RE.fullmatch(name) else "collection", path=path)


def with_collection(root: str, name: str) -> str:
    """The URI of collection `name` under a root (a directory or a DSN)."""
    check_name(name)
    if is_pg(root):
        parts = urlsplit(root)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "collection"]
        query.append(("collection", name))
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
    return str(Path(root) / name)


def redact(text: str) -> str:
    """Replace a DSN's password (user:PASSWORD@ or password=…) with ***."""
    text = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", text)
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", text)


def password_of(dsn: str) -> str | None:
    m = re.search(r"://[^:/@?#]*:([^@/?#]*)@", dsn)
    q = re.search(r"(?i)password=([^&\s]*)", dsn)
    return (m.group(1) if m and m.group(1) else None) or (q.group(1) if q else None)
