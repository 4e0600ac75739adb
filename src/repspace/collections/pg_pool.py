"""The PostgreSQL store's connections: a bounded `psycopg_pool.ConnectionPool` per store (at least 1 and by default at
most 8 connections; `pool_max=` or `REPSPACE_PG_POOL_MAX` to change it), each connection set up for pgvector once,
the database prepared once per pool. Every failure to reach the server is a `StoreUnavailableError` whose message
never shows the DSN's password."""

from __future__ import annotations

import os
import threading
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable

import psycopg

from repspace.collections.uri import password_of, redact
from repspace.errors import InvalidInputError, StoreUnavailableError

POOL_MAX = 8  # default upper bound of a store's connections (REPSPACE_PG_POOL_MAX or pool_max= override it)
CONNECT_TIMEOUT = 10  # seconds, unless the DSN names its own connect_timeout


class _LastInFirstOut(deque):
    """psycopg_pool hands out its idle connections oldest first (round robin over all of them); taken from this deque
    they go newest first, so a lone caller after a busy spell keeps using one warm backend (round robin over 4
    backends cost ~1 ms more per 2k-row search on a 2-core machine) and the others stay idle until the pool shrinks."""

    def popleft(self):
        return self.pop()


def _configure(conn) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)


class Connections:
    """A lazily opened pool for one store; `prepare(conn)` runs once, over a first direct connection, before it."""

    def __init__(self, dsn: str, name: str, *, prepare: Callable[[Any], None], pool_min: int = 1,
                 pool_max: int | None = None, pool_timeout: float = 30.0) -> None:
        if pool_max is None:
            env = os.environ.get("REPSPACE_PG_POOL_MAX", "").strip()
            try:
                pool_max = int(env) if env else POOL_MAX
            except ValueError:
                raise InvalidInputError(f"REPSPACE_PG_POOL_MAX must be a whole number, got {env!r}") from None
        if int(pool_min) < 1 or int(pool_max) < int(pool_min):
            raise InvalidInputError(f"a PostgreSQL pool needs 1 <= pool_min <= pool_max, got {pool_min} and {pool_max}",
                                    param="pool_max")
        self.dsn, self.name, self.prepare = dsn, name, prepare
        self.pool_min, self.pool_max, self.pool_timeout = int(pool_min), int(pool_max), float(pool_timeout)
        self._pool = None
        self._open_lock = threading.Lock()

    def scrub(self, text: str) -> str:
        pw = password_of(self.dsn)
        text = redact(text)
        return text.replace(pw, "***") if pw else text

    def _connect_kwargs(self) -> dict[str, Any]:
        from psycopg.conninfo import conninfo_to_dict

        try:
            given = conninfo_to_dict(self.dsn)
        except Exception:  # noqa: BLE001 - psycopg.connect reports a bad DSN itself
            given = {}
        return {} if "connect_timeout" in given else {"connect_timeout": CONNECT_TIMEOUT}

    def _prepare_database(self) -> None:
        """Check the server can be reached and prepare the database (once per pool)."""
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, **self._connect_kwargs())
        except Exception as e:  # noqa: BLE001 - connection failures of every kind
            raise StoreUnavailableError(f"cannot connect to PostgreSQL at {redact(self.dsn)}: "
                                        f"{self.scrub(str(e)).strip()}") from None
        try:
            with conn.transaction():
                self.prepare(conn)
        except Exception as e:  # noqa: BLE001
            raise StoreUnavailableError(f"PostgreSQL at {redact(self.dsn)} cannot host collections (the pgvector "
                                        f"extension is needed): {self.scrub(str(e)).strip()}") from None
        finally:
            conn.close()

    def pool(self):
        pool = self._pool
        if pool is not None:
            return pool
        with self._open_lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                self._prepare_database()
                pool = ConnectionPool(self.dsn, min_size=self.pool_min, max_size=self.pool_max, open=False,
                                      configure=_configure, timeout=self.pool_timeout, num_workers=1,
                                      kwargs={"autocommit": True, **self._connect_kwargs()},
                                      name=f"repspace:{self.name}")
                if isinstance(getattr(pool, "_pool", None), deque):  # psycopg_pool's idle connections
                    pool._pool = _LastInFirstOut(pool._pool)
                try:
                    pool.open(wait=True, timeout=self.pool_timeout)
                except Exception as e:  # noqa: BLE001
                    pool.close()
                    raise StoreUnavailableError(f"cannot open connections to PostgreSQL at {redact(self.dsn)}: "
                                                f"{self.scrub(str(e)).strip()}") from None
                self._pool = pool
            return self._pool

    @contextmanager
    def connection(self, tx: bool = True):
        """A pooled connection (autocommit), by default inside one transaction. A lost server or a pool that cannot
        hand out a connection in time is a StoreUnavailableError."""
        from psycopg_pool import PoolTimeout

        pool = self.pool()
        conn = None
        try:
            with pool.connection() as conn:
                if tx:
                    with conn.transaction():
                        yield conn
                else:
                    yield conn
        except PoolTimeout as e:
            raise StoreUnavailableError(f"no connection to PostgreSQL at {redact(self.dsn)} within "
                                        f"{self.pool_timeout:g} s: {self.scrub(str(e)).strip()}") from None
        except psycopg.OperationalError as e:
            if conn is None or conn.broken or conn.closed:
                raise StoreUnavailableError(f"lost the connection to PostgreSQL at {redact(self.dsn)}: "
                                            f"{self.scrub(str(e)).strip()}") from None
            raise

    def close(self) -> None:
        with self._open_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
