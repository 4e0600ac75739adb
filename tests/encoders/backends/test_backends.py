"""Encoder backends: export on first use, cache, checksums, the check against torch, refusals (MiniLM-L6)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from repspace.encoders import get_encoder
from repspace.encoders.backends import BACKENDS, backend_of_version, base_of_version
from repspace.errors import BackendCheckError, InvalidInputError, NotAvailableError, UnknownNameError
from tests.encoders.backends.conftest import require

pytestmark = pytest.mark.real

TEXTS = ["a short query", "Stocks fell on Monday as the bank raised rates. " * 5, "hello"]


def exports(home):
    return sorted(p for p in (Path(home) / "models" / "exports").glob("*") if not p.name.startswith("."))


@pytest.fixture(scope="module")
def torch_vectors():
    require()
    return get_encoder("minilm-l6").encode_batch(TEXTS)


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_onnx_backends_match_torch_and_record_themselves(home, torch_vectors, backend):
    require("onnx", "onnxruntime")
    enc = get_encoder("minilm-l6", backend=backend)
    v = enc.encode_batch(TEXTS)
    cos = (v * torch_vectors).sum(1)
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert cos.mean() >= (0.9999 if backend == "onnx" else 0.99)
    d = enc.describe()
    assert d["backend"] == backend and enc.version.endswith(f"+{backend}")
    assert d["check"]["cos_mean"] >= BACKENDS[backend].min_cos
    assert backend_of_version(enc.version) == backend
    assert base_of_version(enc.version) == get_encoder("minilm-l6").version
    assert enc.count_tokens(["hello world"]) == [4]


def test_export_is_cached_and_verified(home):
    require("onnx", "onnxruntime")
    get_encoder("minilm-l6", backend="onnx")
    (d,) = [p for p in exports(home) if "-onnx-" in p.name and "int8" not in p.name]
    manifest = json.loads((d / "export.json").read_text())
    assert set(manifest["files"]) == {"model.onnx", "tokenizer.json"}
    assert manifest["key"]["cpu_flags"] is not None and "onnxruntime" in manifest["key"]["libraries"]
    stamp = (d / "model.onnx").stat().st_mtime_ns
    get_encoder("minilm-l6", backend="onnx")  # cached: not exported again
    assert (d / "model.onnx").stat().st_mtime_ns == stamp


def test_corrupt_export_is_exported_again(fresh_home, torch_vectors, capsys):
    require("onnx", "onnxruntime")
    get_encoder("minilm-l6", backend="onnx")
    (d,) = exports(fresh_home)
    with open(d / "model.onnx", "r+b") as fh:  # flip bytes in the middle of the weights
        fh.seek(1_000_000)
        fh.write(b"\x00\x01\x02\x03")
    enc = get_encoder("minilm-l6", backend="onnx")
    assert "corrupt" in capsys.readouterr().err
    assert (enc.encode_batch(TEXTS) * torch_vectors).sum(1).mean() >= 0.9999
    (d2,) = exports(fresh_home)
    assert d2 == d and json.loads((d / "export.json").read_text())["check"]["cos_mean"] >= 0.9999


def test_other_cpu_flags_export_again(fresh_home, monkeypatch):
    require("onnx", "onnxruntime")
    from repspace.encoders.backends import base

    get_encoder("minilm-l6", backend="onnx")
    monkeypatch.setattr(base, "relevant_flags", lambda flags=None: ["avx2"])  # "another machine kind"
    from repspace.encoders.backends import prepare

    monkeypatch.setattr(prepare, "relevant_flags", lambda flags=None: ["avx2"])
    get_encoder("minilm-l6", backend="onnx")
    assert len(exports(fresh_home)) == 2  # a second export, keyed by the other flags


def test_failed_check_refuses_and_removes_the_artefact(fresh_home, monkeypatch):
    require("onnx", "onnxruntime")
    strict = dataclasses.replace(BACKENDS["onnx-int8"], min_cos=1.01)
    monkeypatch.setitem(BACKENDS, "onnx-int8", strict)
    with pytest.raises(BackendCheckError, match=r"mean cosine of 0\.99\d+ .* below the bound 1\.01") as e:
        get_encoder("minilm-l6", backend="onnx-int8")
    assert e.value.param == "backend"
    assert exports(fresh_home) == []  # nothing left behind
    assert get_encoder("minilm-l6").encode_batch(["still works"]).shape == (1, 384)


def test_missing_runtime_names_the_package(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("no openvino")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(NotAvailableError, match=r"^backend 'openvino' needs the PyPI package openvino \(pip install openvino\)$"):
        get_encoder("minilm-l6", backend="openvino")


def test_bad_backend_names_and_models():
    with pytest.raises(UnknownNameError, match="choose one of torch, onnx, onnx-int8, openvino, openvino-int8"):
        get_encoder("minilm-l6", backend="tensorrt")
    with pytest.raises(InvalidInputError, match="runs only on its own runtime"):
        get_encoder("glove-50", backend="onnx")
    with pytest.raises(InvalidInputError, match="threads"):
        get_encoder("minilm-l6", backend="onnx", threads=0)


def test_cpu_flags_choose_the_int8_config():
    from repspace.encoders.backends.onnx_int8 import quant_config

    assert quant_config(frozenset({"avx2", "avx512bw", "avx512_vnni"}))["config"] == "vnni"
    assert quant_config(frozenset({"avx2", "fma"})) == {"config": "avx2", "weight_type": "QInt8", "reduce_range": True,
                                                        "per_channel": True}
    assert quant_config(frozenset())["weight_type"] == "QUInt8"


def test_versions_parse():
    from repspace.encoders.backends import backend_version

    assert backend_version("sha256:ab", "torch") == "sha256:ab"
    v = backend_version("sha256:ab", "openvino-int8", "0123456789ab")
    assert v == "sha256:ab+openvino-int8.cal-0123456789ab"
    assert backend_of_version(v) == "openvino-int8" and base_of_version(v) == "sha256:ab"
    assert backend_of_version("sha256:ab") == "torch" and backend_of_version(None) == "torch"


@pytest.mark.parametrize("backend", ["openvino", "openvino-int8"])
def test_openvino_backends(home, torch_vectors, backend):
    require("openvino", "nncf")
    enc = get_encoder("minilm-l6", backend=backend)
    cos = (enc.encode_batch(TEXTS) * torch_vectors).sum(1)
    assert cos.mean() >= BACKENDS[backend].min_cos and enc.backend == backend
