"""`repspace collection …` and `repspace import` from the command line, on both backends."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from repspace import Space


def _json(cli, *args):
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_collection_commands_end_to_end(cli, new_uri, tmp_path, backend):
    uri = new_uri()
    d = 8
    v = np.random.default_rng(0).normal(size=(30, d)).astype(np.float32)
    rows = [{"id": f"q{k}", "vector": v[k].tolist(), "label": f"l{k % 2}"} for k in range(30)]
    (tmp_path / "vecs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    info = _json(cli, "collection", "create", uri, "--model", "ext", "--dim", d, "--spec", "Flat")
    assert {"count", "slots", "active", "spec", "backend"} <= set(info) and info["backend"] == backend
    res = _json(cli, "collection", "upsert", uri, "--input", tmp_path / "vecs.jsonl", "--quiet")
    assert res["upserted"] == 30 and res["count"] == 30
    info = _json(cli, "collection", "info", uri)
    assert info["count"] == 30 and info["active"] == "ext" and info["slots"][0]["count"] == 30
    # search by a query space of the slot's model
    Space(v[:3], ["a", "b", "c"], model="ext").save(tmp_path / "qs")
    res = _json(cli, "collection", "search", uri, "--queries", tmp_path / "qs", "--k", 3)
    assert [r["query"] for r in res["results"]] == ["a", "b", "c"]
    assert [r["hits"][0]["id"] for r in res["results"]] == ["q0", "q1", "q2"]
    assert set(res["results"][0]["hits"][0]) == {"id", "score"}
    assert res["results"][0]["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    res = _json(cli, "collection", "search", uri, "--queries", tmp_path / "qs", "--k", 30, "--filter", "label=l1")
    assert len(res["results"][0]["hits"]) == 15 and all(int(h["id"][1:]) % 2 for h in res["results"][0]["hits"])
    got = _json(cli, "collection", "get", uri, "q1", "nope")
    assert got["items"][0]["payload"] == {"label": "l1"} and got["missing"] == ["nope"]
    res = _json(cli, "collection", "delete", uri, "--ids", "q1", "q2")
    assert res == {"deleted": 2, "count": 28}
    (tmp_path / "ids.txt").write_text("q3\nq4\n")
    assert _json(cli, "collection", "delete", uri, "--ids-file", tmp_path / "ids.txt")["count"] == 26
    assert _json(cli, "collection", "info", uri)["count"] == 26
    code, _, err = cli("collection", "export", uri, "--out", tmp_path / "exported")
    assert code == 0, err
    sp = Space.load(tmp_path / "exported")
    assert sp.count == 26 and sp.model == "ext" and set(sp.labels) == {"l0", "l1"}
    # re-running the same upsert writes nothing new and duplicates nothing
    res = _json(cli, "collection", "upsert", uri, "--space", tmp_path / "exported", "--quiet")
    assert res["skipped"] == 26 and res["count"] == 26


def test_collection_cli_errors_are_one_line(cli, new_uri, tmp_path):
    uri = new_uri()
    assert cli("collection", "create", uri, "--model", "ext", "--dim", 4)[0] == 0
    Space(np.ones((2, 5), np.float32), ["a", "b"], model="ext").save(tmp_path / "wrongdim")
    Space(np.ones((2, 4), np.float32), ["a", "b"], model="someone-else").save(tmp_path / "othermodel")
    cases = [
        ("collection", "upsert", uri, "--space", tmp_path / "wrongdim"),
        ("collection", "upsert", uri, "--space", tmp_path / "othermodel"),
        ("collection", "upsert", uri),
        ("collection", "search", uri, "--text", "hi"),  # an external model cannot encode queries
        ("collection", "search", uri, "--queries", tmp_path / "othermodel"),
        ("collection", "info", new_uri()),
        ("collection", "create", uri, "--model", "ext", "--dim", 4),
        ("collection", "create", new_uri(), "--model", "ext", "--dim", 4, "--spec", "HNSW"),
        ("collection", "delete", uri),
        ("collection", "search", uri, "--queries", tmp_path / "wrongdim", "--filter", "novalue"),
    ]
    for args in cases:
        code, out, err = cli(*args)
        assert code == 2, (args, out, err)
        assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)
    assert json.loads(cli("collection", "info", uri, "--json")[1])["count"] == 0
    code, _, err = cli("collection", "upsert", uri, "--dataset", "bbc-news:title", "--limit", 3, "--encode-batch", 0)
    assert code == 2 and "encode_batch" in err and err.rstrip().endswith("[--encode-batch]"), err


def test_import_external_vectors(cli, tmp_path):
    v = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    np.save(tmp_path / "e.npy", v)
    (tmp_path / "ids.txt").write_text("\n".join(f"x{k}" for k in range(5)) + "\n")
    assert cli("import", tmp_path / "e.npy", "--ids", tmp_path / "ids.txt", "--model", "openai-3-small",
               "--out", tmp_path / "s1")[0] == 0
    s1 = Space.load(tmp_path / "s1")
    assert s1.ids == [f"x{k}" for k in range(5)] and s1.model == "openai-3-small"
    np.testing.assert_array_equal(np.asarray(s1.vectors), v)
    table = pa.table({"doc": [f"x{k}" for k in range(5)],
                      "emb": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 6), "label": list("aabba")})
    pq.write_table(table, tmp_path / "e.parquet")
    assert cli("import", tmp_path / "e.parquet", "--model", "m", "--id-column", "doc", "--vector-column", "emb",
               "--out", tmp_path / "s2")[0] == 0
    s2 = Space.load(tmp_path / "s2")
    np.testing.assert_array_equal(np.asarray(s2.vectors), v)
    assert list(s2.labels) == list("aabba")
    bad = {
        "nan.jsonl": '{"id": "a", "vector": [1, NaN]}\n{"id": "b", "vector": [1, 2]}\n',
        "ragged.jsonl": '{"id": "a", "vector": [1, 2]}\n{"id": "b", "vector": [1]}\n',
        "dups.jsonl": '{"id": "a", "vector": [1, 2]}\n{"id": "a", "vector": [1, 3]}\n',
        "novec.jsonl": '{"id": "a", "text": "hello"}\n',
    }
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        code, _, err = cli("import", tmp_path / name, "--model", "m", "--out", tmp_path / f"out-{name}")
        assert code == 2 and err.startswith("error: ") and "Traceback" not in err, (name, err)
        assert not (tmp_path / f"out-{name}").exists()
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = cli("import", tmp_path / "obj.npy", "--model", "m", "--out", tmp_path / "o")
    assert code == 2 and "pickle" in err


@pytest.mark.real
def test_text_collection_with_a_real_model(cli, tmp_path):
    uri = str(tmp_path / "news")
    assert cli("collection", "create", uri, "--model", "minilm-l6")[0] == 0
    res = _json(cli, "collection", "upsert", uri, "--dataset", "bbc-news:title@test", "--limit", 60, "--quiet")
    assert res["upserted"] == 60
    res = _json(cli, "collection", "search", uri, "--text", "football match", "--k", 5)
    assert len(res["results"][0]["hits"]) == 5
    items = tmp_path / "q.jsonl"
    items.write_text('{"id": "q1", "text": "oil prices"}\n{"id": "q2", "text": "new film awards"}\n')
    res = _json(cli, "collection", "search", uri, "--input", items, "--k", 3)
    assert [r["query"] for r in res["results"]] == ["q1", "q2"]
    got = _json(cli, "collection", "get", uri, res["results"][0]["hits"][0]["id"])
    assert got["items"][0]["text"] and "label" in got["items"][0]["payload"]


@pytest.mark.parametrize("group", ["collection", "upgrade", "compress", "align", "index"])
def test_usage_errors_print_usage_not_traceback(cli, group):
    for args in ([group, "no-such-command"], [group, "--bogus-flag"]):
        code, out, err = cli(*args)
        assert code == 2 and "Traceback" not in err and "Usage:" in err, (args, err)


@pytest.mark.parametrize("args", [["no-such-command"], ["encode", "--bogus-flag"], ["info"], ["collection", "get"],
                                  ["collection", "create"], ["import"]])
def test_top_level_usage_errors(cli, args):
    code, out, err = cli(*args)
    assert code == 2 and "Traceback" not in err and "Usage:" in err, (args, err)


def test_a_search_process_ends_without_teardown_and_loses_no_output(cli, tmp_path, monkeypatch):
    """`repspace collection search` as its own process (`cli/main.py` `main()`): it ends with os._exit after flushing
    (a read-only one-off skips the interpreter's teardown), so its whole JSON arrives and the exit code is 0; an error
    still exits 2 the normal way; the in-process `run()` is not ended by it."""
    import subprocess
    import sys

    from repspace.cli import app as cli_app

    uri = str(tmp_path / "c")
    v = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)
    _json(cli, "collection", "create", uri, "--model", "ext", "--dim", 8, "--spec", "Flat")
    from repspace.collections import Collection

    with Collection.open(uri) as c:
        c.upsert([f"i{j}" for j in range(300)], vectors=v)
    np.save(tmp_path / "q.npy", v[:50])
    run = [sys.executable, "-m", "repspace.cli.main", "collection", "search", uri, "--query-vectors",
           str(tmp_path / "q.npy"), "--k", "20", "--json"]
    got = subprocess.run(run, capture_output=True, text=True)
    assert got.returncode == 0, got.stderr
    res = json.loads(got.stdout)
    assert len(res["results"]) == 50 and all(len(r["hits"]) == 20 for r in res["results"])
    assert [r["hits"][0]["id"] for r in res["results"]] == [f"i{j}" for j in range(50)]
    bad = subprocess.run(run[:-3] + ["--k", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
    monkeypatch.setattr(cli_app, "_QUICK_EXIT", [])
    assert _json(cli, "collection", "search", uri, "--query-vectors", tmp_path / "q.npy", "--k", 3)["results"]
    assert cli_app.wants_quick_exit()  # recorded in-process, acted on only by main()
