"""The encoder backends study (the demo's "Encoder backends" section) on a tiny slice of bbc-news: torch and onnx
(exported once per session into the shared exports home), and a backend whose runtime is missing (a note)."""

import dataclasses

import numpy as np
import pytest

from repspace import Space
from repspace.report import Report

pytestmark = pytest.mark.real


@pytest.fixture
def torch_spaces(exports_home, monkeypatch):
    from tests.encoders.backends.conftest import require

    require("onnx", "onnxruntime")
    monkeypatch.setenv("REPSPACE_HOME", exports_home)
    from repspace.datasets import load_dataset
    from repspace.encoders import get_encoder

    t, b = load_dataset("bbc-news:title"), load_dataset("bbc-news:body")
    pick = np.linspace(0, len(t) - 1, 40).astype(int)
    ids = [t.ids[k] for k in pick]
    title, body = dict(zip(t.ids, t.data)), dict(zip(b.ids, b.data))
    enc = get_encoder("minilm-l6")
    q = Space(enc.encode_batch([title[i] for i in ids]), ids, model="minilm-l6", view="title")
    g = Space(enc.encode_batch([body[i] for i in ids]), ids, model="minilm-l6", view="body")
    return q, g, title, body


def test_backend_study_rows_and_section(torch_spaces, monkeypatch):
    from repspace.encoders.backends import BACKENDS
    from repspace.report.backends import backends_section
    from repspace.studies.backends import backend_study

    missing = dataclasses.replace(BACKENDS["openvino"], runtime=(("repspace_no_such_runtime", "no-such-package"),))
    monkeypatch.setitem(BACKENDS, "openvino", missing)
    q, g, title, body = torch_spaces
    res = backend_study(q, g, title, body, backends=["onnx", "openvino"], n_short=16, n_long=8, peak_seconds=0.05)
    assert [r["backend"] for r in res["speed_rows"]] == ["torch", "onnx"] == [r["backend"] for r in res["quality_rows"]]
    assert res["skipped"] == [{"backend": "openvino", "reason": "backend 'openvino' needs the PyPI package "
                                                                "no-such-package (pip install no-such-package)"}]
    assert res["n_short"] == 16 and res["n_long"] == 8 and res["gallery_items"] == 40 and res["peak_gflops"] > 0
    assert res["shape"]["layers"] == 6 and res["shape"]["hidden"] == 384
    torch_row, onnx_row = res["quality_rows"]
    assert torch_row["cos vs torch (titles)"] == pytest.approx(1.0) and torch_row["÷ torch"] == 1.0
    assert torch_row["compatible"] is True
    assert onnx_row["min cos"] >= 0.9999 and onnx_row["÷ torch"] == pytest.approx(1.0, abs=0.02)
    speed = res["speed_rows"][0]
    assert speed["× torch (titles)"] == 1.0 and speed["titles/s"] > 0 and speed["of fp32 peak (bodies)"].endswith("%")
    report = Report("t")
    backends_section(report, res)
    (title_, html), = report.sections
    assert title_ == "Encoder backends" and html.count("<table>") == 2 and "no-such-package" in html
    assert "data:image/png;base64," in html
