"""The examples of docs/integrations.md run exactly as written (so the doc stays true)."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.real
DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def blocks() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- test: ([\w-]+) -->\s*```python\n(.*?)```", text, flags=re.S))


def test_doc_has_the_examples():
    assert set(blocks()) == {"langchain-rag", "langchain-upgrade", "llamaindex"}
    assert len(blocks()["langchain-rag"].strip().splitlines()) <= 25


def test_langchain_rag_and_upgrade(tmp_path, monkeypatch, capsys):
    pytest.importorskip("langchain_core")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(blocks()["langchain-rag"], "integrations.md:langchain-rag", "exec"), ns)
    out = capsys.readouterr().out.splitlines()
    assert len(out) >= 4 and all(line.split()[1] == "business" for line in out[:3])
    assert "Question: Why did oil prices rise?" in "\n".join(out) or "Answer from the context" in out[3]
    before = [d.id for d in ns["retriever"].invoke(ns["question"])]
    exec(compile(blocks()["langchain-upgrade"], "integrations.md:langchain-upgrade", "exec"), ns)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(line.split()[1] == "business" for line in out)
    from repspace.collections import Collection

    c = Collection.open("bbc-collection")
    assert c.info()["upgrade"]["new"] == "minilm-l3-onnx"
    fused = c.search(texts=[ns["question"]], k=3, filter={"label": "business"}, strategy="fused")[0]
    assert [line.split()[0] for line in out] == [h["id"] for h in fused]
    assert len(before) == 3


def test_llamaindex_example(tmp_path, monkeypatch, capsys):
    pytest.importorskip("llama_index.core")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(blocks()["llamaindex"], "integrations.md:llamaindex", "exec"), ns)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(line.split()[0].startswith("sports/") for line in out)
    store = ns["index"].vector_store
    first = ns["items"].ids[0]
    assert not store._ids_where("ref_doc_id", first)
    assert store.collection.count() >= 349
