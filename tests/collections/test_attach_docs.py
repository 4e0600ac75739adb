"""docs/attach.md, executed: its python blocks in order in one namespace, its bash blocks in a shell (with DSN and
WORK set), against a real PostgreSQL + pgvector and LanceDB."""

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "attach.md"


@pytest.mark.real
def test_the_walkthrough_runs(pg_dsn, tmp_path, monkeypatch):
    import psycopg

    db = f"doc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    dsn = re.sub(r"/postgres\?", f"/{db}?", pg_dsn, count=1)
    assert db in dsn and "?" in dsn  # the doc appends &collection=…
    env = {**os.environ, "DSN": dsn, "WORK": str(tmp_path),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    monkeypatch.setenv("DSN", dsn)
    monkeypatch.setenv("WORK", str(tmp_path))
    blocks = re.findall(r"```(python|bash)\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 10
    ns: dict = {}
    for kind, code in blocks:
        if kind == "python":
            exec(compile(code, f"{DOC.name}", "exec"), ns)  # noqa: S102 - our own documentation
        else:
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], env=env, capture_output=True, text=True,
                               timeout=600)
            assert r.returncode == 0, f"{code}\n{r.stdout}\n{r.stderr}"
    assert "embedding_v_1" in (tmp_path / "finish.txt").read_text()
    ns["app"].close()
