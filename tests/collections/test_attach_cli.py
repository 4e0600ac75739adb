"""`repspace collection attach` and the upgrade of an attached table from the command line (the app's PostgreSQL
table written by raw psycopg SQL), including `backfill --follow` stopped by SIGTERM in a real process."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from tests.collections.test_attach import DIM, PgApp, _rows, _unit


def _json(cli, *args):
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def pg_app(pg_dsn):
    app = PgApp(pg_dsn, f"cli_{uuid.uuid4().hex[:6]}", _rows(40, np.random.default_rng(0)))
    yield app
    app.close()


def _uri(app):
    from repspace.collections import with_collection

    return with_collection(app.dsn, f"c{uuid.uuid4().hex[:8]}")


def test_attach_and_search_from_the_cli(cli, pg_app, tmp_path):
    uri = _uri(pg_app)
    info = _json(cli, "collection", "attach", uri, "--table", pg_app.table, "--id", "doc_id", "--vector", "embedding",
                 "--text", "Body Text", "--payload", "category,meta", "--model", "app-model", "--dim", DIM)
    assert info["count"] == 40 and info["attached"]["table"][-1] == pg_app.table
    q = _unit(np.random.default_rng(3), 2)
    np.save(tmp_path / "q.npy", q)
    res = _json(cli, "collection", "search", uri, "--query-vectors", tmp_path / "q.npy", "--k", 5, "--payload")
    assert [h["id"] for h in res["results"][1]["hits"]] == pg_app.own_search(q[1], 5)
    assert set(res["results"][0]["hits"][0]["payload"]) == {"category", "meta"}
    code, _, err = cli("collection", "upsert", uri, "--input", tmp_path / "q.npy")
    assert code == 2 and "attached" in err
    code, _, err = cli("collection", "drop", uri, "--yes")
    assert code == 0 and "untouched" in err and len(pg_app.snapshot()) == 40


@pytest.mark.parametrize("args, flag", [
    (["--table", "nope_table"], "--table"), (["--vector", "nope"], "--vector"), (["--id", "nope"], "--id"),
    (["--vector", "category"], "--vector"), (["--dim", "3"], "--dim"), (["--text", "nope"], "--text"),
    (["--payload", "category,nope"], "--payload"), (["--spec", "int8"], "--spec")])
def test_attach_errors_name_the_flag(cli, pg_app, args, flag):
    base = {"--table": pg_app.table, "--id": "doc_id", "--vector": "embedding", "--model": "m", "--dim": str(DIM)}
    base.update(dict(zip(args[::2], args[1::2])))
    code, out, err = cli("collection", "attach", _uri(pg_app), *[x for kv in base.items() for x in kv])
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and flag in lines[0], err
    assert "Traceback" not in err


@pytest.mark.real
def test_upgrade_an_attached_table_from_the_cli(cli, pg_dsn, tmp_path):
    """Side table, backfill --follow in its own process while the app inserts, SIGTERM, switch, finish with SQL."""
    from repspace.encoders import get_encoder
    from tests.collections.conftest import bbc_leads

    _, texts, labels = bbc_leads(60)
    old = get_encoder("minilm-l3-onnx").encode_batch(texts)
    app = PgApp(pg_dsn, f"cliup_{uuid.uuid4().hex[:6]}", list(zip(texts, labels, old)), dim=384)
    cols = app.columns()
    uri = _uri(app)
    _json(cli, "collection", "attach", uri, "--table", app.table, "--id", "doc_id", "--vector", "embedding",
          "--text", "Body Text", "--model", "minilm-l3-onnx")
    st = _json(cli, "upgrade", "start", uri, "--model", "minilm-l6", "--sample", 30, "--side-table", "--quiet")
    assert st["state"] == "open" and app.columns() == cols  # the app's table untouched
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd() + "/src", os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "repspace.cli.main", "upgrade", "backfill", uri, "--follow",
                             "--interval", "0.5", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True)
    try:
        deadline = time.time() + 120
        app.insert(9000, "the application keeps writing rows during the upgrade", "x", old[0])
        while time.time() < deadline:
            got = _json(cli, "upgrade", "status", uri)
            if got["fraction"] == 1.0 and got["count"] == 61:
                break
            time.sleep(0.5)
        assert got["fraction"] == 1.0 and got["count"] == 61
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    res = json.loads(out)
    assert res["stopped"] and res["fraction"] == 1.0 and res["backfilled"] >= 31
    _json(cli, "upgrade", "switch", uri, "--force")
    code, out, err = cli("upgrade", "finish", uri)
    assert code == 0 and "rs_" in err and "<=>" in err and "kept" in err
    assert app.columns() == cols
    _json(cli, "collection", "info", uri)
    app.close()
