"""Crash safety, concurrent readers and connection errors, with real processes and the real servers."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from repspace.collections import Collection
from repspace.errors import StoreUnavailableError

REPSPACE = [sys.executable, "-m", "repspace.cli.main"]


def _env():
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_acknowledged_upserts_survive_kill_9_and_rerun_is_exact(new_uri, tmp_path):
    n, d, batch = 6000, 32, 200
    v = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    ids = [f"doc/{k:05d}" for k in range(n)]
    np.save(tmp_path / "v.npy", v)
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    uri = new_uri()
    Collection.create(uri, model="ext", dim=d).close()
    writer = textwrap.dedent(f"""
        import numpy as np, sys
        from repspace.collections import Collection
        v = np.load({str(tmp_path / 'v.npy')!r})
        ids = open({str(tmp_path / 'ids.txt')!r}).read().split()
        c = Collection.open({uri!r})
        for s in range(0, {n}, {batch}):
            c.upsert(ids[s:s + {batch}], vectors=v[s:s + {batch}])
            print("ack", s + {batch}, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
                            text=True)
    acked = 0
    deadline = time.time() + 120
    while acked < 5 * batch and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"writer ended early: {proc.stderr.read()}")
        acked = int(line.split()[1])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    c = Collection.open(uri)
    have = {g["id"] for g in c.get(ids[:acked])}
    assert have == set(ids[:acked]), "an acknowledged upsert was lost"
    assert c.count() % batch == 0  # whole batches only, never half of one
    c.close()
    # the CLI re-run upserts only what is missing; every item exactly once, vectors equal to the input
    out = subprocess.run(REPSPACE + ["collection", "upsert", uri, "--input", str(tmp_path / "v.npy"), "--ids",
                                     str(tmp_path / "ids.txt"), "--batch-size", str(batch), "--quiet", "--json"],
                         capture_output=True, text=True, env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    res = json.loads(out.stdout)
    assert res["count"] == n and res["skipped"] >= acked
    c = Collection.open(uri)
    space = c.export()
    assert space.ids == sorted(ids)
    np.testing.assert_array_equal(np.asarray(space.vectors), v[np.argsort(ids)])
    c.close()


@pytest.mark.real
def test_text_upsert_killed_mid_run_equals_uninterrupted(new_uri):
    args = ["--dataset", "bbc-news:title@test", "--limit", "600", "--batch-size", "20", "--quiet"]
    clean, killed = new_uri(), new_uri()
    for uri in (clean, killed):
        subprocess.run(REPSPACE + ["collection", "create", uri, "--model", "glove-50"], check=True, env=_env(),
                       capture_output=True)
    subprocess.run(REPSPACE + ["collection", "upsert", clean] + args, check=True, env=_env(), capture_output=True)
    proc = subprocess.Popen(REPSPACE + ["collection", "upsert", killed] + args, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    probe = Collection.open(killed)
    deadline = time.time() + 120
    while probe.count() < 100 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = probe.count()
    probe.close()
    assert 0 < partial < 600, "kill the job while it runs"
    subprocess.run(REPSPACE + ["collection", "upsert", killed] + args, check=True, env=_env(), capture_output=True)
    a, b = Collection.open(clean).export(), Collection.open(killed).export()
    assert a.ids == b.ids and len(a.ids) == 600
    np.testing.assert_array_equal(np.asarray(a.vectors), np.asarray(b.vectors))


def test_readers_see_whole_batches_during_long_writes(new_uri):
    d, batch, batches = 16, 50, 30
    uri = new_uri()
    Collection.create(uri, model="ext", dim=d).close()
    v = np.random.default_rng(2).normal(size=(batch * batches, d)).astype(np.float32)
    errors, counts = [], []
    done = threading.Event()

    def write():
        try:
            w = Collection.open(uri)
            for b in range(batches):
                s = b * batch
                w.upsert([f"i{k}" for k in range(s, s + batch)], vectors=v[s : s + batch])
            w.delete([f"i{k}" for k in range(0, batch)])
            w.close()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            done.set()

    def read():
        r = Collection.open(uri)
        try:
            while not done.is_set():
                n = r.count()
                counts.append(n)
                hits = r.search(vectors=v[:2], k=5)
                assert all(len(row) == min(5, max(n, len(row))) for row in hits)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            r.close()

    t = [threading.Thread(target=write), threading.Thread(target=read)]
    for x in t:
        x.start()
    for x in t:
        x.join(timeout=120)
    assert not errors, errors
    assert counts and all(n % batch == 0 for n in counts)
    assert counts == sorted(counts) or max(counts) == batch * batches  # grows, then one delete of a batch
    c = Collection.open(uri)
    assert c.count() == batch * (batches - 1)
    c.close()


def test_unreachable_database_error_never_shows_the_password(cli):
    uri = "postgresql://alice:S3cretPw@127.0.0.1:1/postgres?collection=docs&connect_timeout=2"
    with pytest.raises(StoreUnavailableError) as e:
        Collection.open(uri)
    assert "S3cretPw" not in str(e.value) and "***" in str(e.value)
    code, out, err = cli("collection", "info", uri, "--json")
    assert code == 2 and "S3cretPw" not in out + err and "Traceback" not in err and err.startswith("error:")


def test_wrong_password_is_one_clear_error(pg_dsn, cli):
    if os.environ.get("REPSPACE_TEST_PG_DSN"):
        pytest.skip("needs the test's own server (it edits pg_hba.conf)")
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        hba = conn.execute("SHOW hba_file").fetchone()[0]
        conn.execute("DROP ROLE IF EXISTS rs_alice")
        conn.execute("CREATE ROLE rs_alice LOGIN PASSWORD 'right-one'")
        original = open(hba).read()
        with open(hba, "w") as fh:
            fh.write("local all rs_alice scram-sha-256\n" + original)
        conn.execute("SELECT pg_reload_conf()")
    try:
        time.sleep(0.3)
        host = pg_dsn.split("host=")[1].split("&")[0]
        uri = f"postgresql://rs_alice:Wr0ngPass@/postgres?host={host}&collection=docs"
        with pytest.raises(StoreUnavailableError, match="password authentication failed") as e:
            Collection.open(uri)
        assert "Wr0ngPass" not in str(e.value)
        code, out, err = cli("collection", "info", uri)
        assert code == 2 and "Wr0ngPass" not in out + err and "Traceback" not in err
    finally:
        with open(hba, "w") as fh:
            fh.write(original)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
