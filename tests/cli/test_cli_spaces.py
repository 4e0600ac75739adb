import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import make_space


def test_encode_info_json(cli, tmp_path):
    code, _, err = cli("encode", "--model", "glove-50", "--dataset", "bbc-news:body", "--out", tmp_path / "g", "--quiet")
    assert code == 0, err
    code, out, _ = cli("info", tmp_path / "g", "--json")
    info = json.loads(out)
    assert code == 0
    assert info["count"] == 2225 and info["dim"] == 50 and info["model"] == "glove-50"
    assert info["dtype"] == "float32" and isinstance(info["normalized"], bool)
    assert info["dataset"] == "bbc-news" and info["view"] == "body"


def test_encode_input_file_with_columns(cli, tmp_path):
    (tmp_path / "t.csv").write_text("key,body,topic\nk1,stocks fell sharply,econ\nk2,the team won the cup,sport\n")
    code, _, err = cli("encode", "--model", "glove-50", "--input", tmp_path / "t.csv", "--text-column", "body",
                       "--id-column", "key", "--label-column", "topic", "--out", tmp_path / "s", "--quiet")
    assert code == 0, err
    from repspace import Space

    s = Space.load(tmp_path / "s")
    assert s.ids == ["k1", "k2"] and list(s.labels) == ["econ", "sport"]


def test_models_and_datasets_json(cli):
    code, out, _ = cli("models", "--json")
    names = {m["name"]: m for m in json.loads(out)["models"]}
    assert code == 0 and set(names) == {"minilm-l6", "mpnet-base", "minilm-l3-onnx", "glove-50", "efficientnet-lite0"}
    assert names["minilm-l6"]["available"] is True and names["mpnet-base"]["dim"] == 768
    code, out, _ = cli("datasets", "--json")
    ds = {d["name"]: d for d in json.loads(out)["datasets"]}
    assert set(ds) == {"bbc-news", "bbc-sentences", "fashion-mnist", "digits", "gcide", "gcide-senses"} and ds["bbc-news"]["views"] == ["text", "title", "body"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["encode", "--model", "nope", "--dataset", "bbc-news", "--out", "{tmp}/o"], "unknown model 'nope'"),
        (["encode", "--model", "glove-50", "--dataset", "nope", "--out", "{tmp}/o"], "unknown dataset 'nope'"),
        (["encode", "--model", "glove-50", "--input", "{tmp}/empty.txt", "--out", "{tmp}/o"], "no items"),
        (["encode", "--model", "glove-50", "--input", "{tmp}/dup.jsonl", "--out", "{tmp}/o"], "duplicate ids"),
        (["encode", "--model", "glove-50", "--input", "{tmp}/nocol.csv", "--out", "{tmp}/o"], "no text column"),
        (["encode", "--model", "glove-50", "--input", "{tmp}/latin.txt", "--out", "{tmp}/o"], "not valid UTF-8"),
        (["encode", "--model", "glove-50", "--out", "{tmp}/o"], "exactly one of --dataset"),
        (["encode", "--model", "glove-50", "--dataset", "digits", "--out", "{tmp}/o"], "encodes text, but the input holds image"),
        (["info", "{tmp}/space.pkl"], "pickle"),
        (["info", "{tmp}/notaspace"], "not a repspace space"),
        (["info", "{tmp}/missing"], "does not exist"),
        (["info", "{tmp}/corrupt"], "checksum mismatch"),
    ],
)
def test_user_errors_are_one_line(cli, tmp_path, args, message):
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "dup.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    (tmp_path / "nocol.csv").write_text("id,body\n1,x\n")
    (tmp_path / "latin.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "space.pkl").write_bytes(pickle.dumps([1, 2]))
    (tmp_path / "notaspace").mkdir()
    make_space().save(tmp_path / "corrupt")
    v = np.load(tmp_path / "corrupt" / "vectors.npy")
    v[3] = 0
    np.save(tmp_path / "corrupt" / "vectors.npy", v)
    code, out, err = cli(*[a.format(tmp=tmp_path) for a in args])
    assert code != 0
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_existing_output_of_other_model_refused_unless_overwrite(cli, tmp_path):
    (tmp_path / "a.txt").write_text("hello world\nstocks fell\n")
    out = tmp_path / "o"
    assert cli("encode", "--model", "glove-50", "--input", tmp_path / "a.txt", "--out", out, "--quiet")[0] == 0
    code, _, err = cli("encode", "--model", "minilm-l3-onnx", "--input", tmp_path / "a.txt", "--out", out, "--quiet")
    assert code == 2 and "holds a space of model 'glove-50'" in err and "--overwrite" in err
    code, _, err = cli("encode", "--model", "minilm-l3-onnx", "--input", tmp_path / "a.txt", "--out", out, "--quiet",
                       "--overwrite")
    assert code == 0, err
    code, out_json, _ = cli("info", out, "--json")
    assert json.loads(out_json)["model"] == "minilm-l3-onnx"


def test_console_script_exit_code_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "repspace.cli.main", "info", str(tmp_path / "nothing")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.startswith("error:") and "Traceback" not in res.stderr
