import json

import numpy as np
import pytest

from repspace.datasets import DATASETS, hash_split, load_dataset, parse_dataset_spec, read_input
from repspace.errors import InvalidInputError, UnknownNameError


def test_bbc_news_views_share_ids():
    title = load_dataset("bbc-news:title")
    body = load_dataset("bbc-news:body")
    assert len(title) == len(body) == 2225
    assert title.ids == body.ids
    assert set(title.labels) == {"business", "entertainment", "politics", "sports", "tech"}
    assert title.data[0] == "Ad sales boost Time Warner profit"
    assert body.data[0].startswith("Quarterly profits at US media giant TimeWarner")
    assert all(t.strip() for t in title.data) and all(b.strip() for b in body.data)


def test_bbc_news_splits_partition():
    tr, te = load_dataset("bbc-news:title@train"), load_dataset("bbc-news:title@test")
    assert len(tr) + len(te) == 2225
    assert not set(tr.ids) & set(te.ids)
    assert 0.4 < len(te) / 2225 < 0.6
    assert all(hash_split(i) == "test" for i in te.ids)


def test_digits():
    d = load_dataset("digits")
    assert d.modality == "image" and len(d) == 1797 and d.data.dtype == np.uint8 and d.data.shape[1:] == (8, 8)


@pytest.mark.skipif(not DATASETS["fashion-mnist"].available(), reason="Debian dataset-fashion-mnist not installed")
def test_fashion_mnist():
    d = load_dataset("fashion-mnist@test")
    assert len(d) == 10000 and d.data.shape == (10000, 28, 28)
    assert len(set(d.labels)) == 10


def test_spec_errors():
    with pytest.raises(UnknownNameError, match="unknown dataset 'nope'.*bbc-news"):
        parse_dataset_spec("nope")
    with pytest.raises(UnknownNameError, match="no view 'abstract'"):
        parse_dataset_spec("bbc-news:abstract")
    with pytest.raises(UnknownNameError, match="no split 'dev'"):
        parse_dataset_spec("bbc-news@dev")


def test_txt_jsonl_csv_parquet(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n\nsecond line\n")
    t = read_input(tmp_path / "a.txt")
    assert t.ids == ["1", "3"] and t.data == ["first line", "second line"]

    rows = [{"id": "x", "text": "hello", "label": "greet"}, {"id": "y", "text": "bye", "label": "part"}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    j = read_input(tmp_path / "a.jsonl")
    assert j.ids == ["x", "y"] and list(j.labels) == ["greet", "part"]

    (tmp_path / "a.csv").write_text("key,body,topic\nk1,alpha,t1\nk2,beta,t2\n")
    c = read_input(tmp_path / "a.csv", text_column="body", id_column="key", label_column="topic")
    assert c.ids == ["k1", "k2"] and c.data == ["alpha", "beta"] and list(c.labels) == ["t1", "t2"]

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["p", "q"], "text": ["one", "two"]}), tmp_path / "a.parquet")
    p = read_input(tmp_path / "a.parquet")
    assert p.ids == ["p", "q"] and p.labels is None


def test_image_folder(tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "imgs" / label / "a.png")
    items = read_input(tmp_path / "imgs")
    assert items.modality == "image" and items.ids == ["cat/a", "dog/a"] and list(items.labels) == ["cat", "dog"]


def test_bad_inputs(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(InvalidInputError, match="no items"):
        read_input(tmp_path / "empty.txt")
    (tmp_path / "latin.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(InvalidInputError, match="not valid UTF-8.*line 1"):
        read_input(tmp_path / "latin.txt")
    (tmp_path / "dup.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    with pytest.raises(InvalidInputError, match="duplicate ids"):
        read_input(tmp_path / "dup.jsonl")
    (tmp_path / "nocol.csv").write_text("id,body\n1,x\n")
    with pytest.raises(InvalidInputError, match="no text column 'text'; columns: id, body"):
        read_input(tmp_path / "nocol.csv")
    (tmp_path / "bad.jsonl").write_text('{"id": 1, "text": "x"}\nnot json\n')
    with pytest.raises(InvalidInputError, match="line 2 is not valid JSON"):
        read_input(tmp_path / "bad.jsonl")
    (tmp_path / "x.docx").write_text("x")
    with pytest.raises(InvalidInputError, match="unsupported input"):
        read_input(tmp_path / "x.docx")
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_input(tmp_path / "missing.txt")
