import gzip

import pytest

from repspace.datasets import DATASETS, hash_split, load_dataset
from repspace.datasets import gcide
from repspace.errors import NotAvailableError

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(v: int) -> str:
    s = ""
    while True:
        s = _ALPHABET[v % 64] + s
        v //= 64
        if not v:
            return s


def test_b64_number_is_dictd_base64():
    assert gcide.b64_number("A") == 0 and gcide.b64_number("/") == 63
    assert gcide.b64_number("BNy") == 1 * 64 * 64 + 13 * 64 + 50
    assert all(gcide.b64_number(_b64(v)) == v for v in (0, 1, 63, 64, 4095, 123456))


def test_clean_definition_drops_pronunciation_etymology_and_tags():
    entry = ('Actinia \\Ac*tin"i*a\\, n.; pl. L. {Actini[ae]}. [Latinized fr. Gr. ?, ray.] (Zool.)\n'
             '   1. An animal of the class Anthozoa, {sea anemones}.\n   [1913 Webster]\n')
    assert gcide.clean_definition(entry) == "n.; pl. L. Actiniae. (Zool.) An animal of the class Anthozoa, sea anemones."
    assert len(gcide.clean_definition("W \\W\\ n. " + "word " * 200).split()) == gcide.MAX_WORDS


@pytest.fixture
def tiny_dict(tmp_path, monkeypatch):
    bodies = ["Cat \\Cat\\, n. A small feline.\n", "Dog \\Dog\\, n. A canine.\n   [1913 Webster]\n",
              "cat \\cat\\, v. t. To hoist an anchor.\n"]
    data = "".join(bodies).encode()
    with gzip.open(tmp_path / "gcide.dict.dz", "wb") as fh:
        fh.write(data)
    lines, off = ["00-database-info\tA\tB"], 0
    for head, body in zip(["Cat", "Dog", "cat"], bodies):
        lines.append(f"{head}\t{_b64(off)}\t{_b64(len(body))}")
        off += len(body)
    lines.append(f"Doggy\t{_b64(len(bodies[0]))}\t{_b64(len(bodies[1]))}")  # a second headword of the Dog entry
    (tmp_path / "gcide.index").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(gcide, "GCIDE_DIR", tmp_path)
    gcide.entries.cache_clear()
    yield tmp_path
    gcide.entries.cache_clear()


def test_gcide_reads_dictd_index_and_dict(tiny_dict):
    items = load_dataset("gcide")
    assert items.ids == ["cat", "dog", "cat#2"]
    assert items.data == ["n. A small feline.", "n. A canine.", "v. t. To hoist an anchor."]
    assert load_dataset("gcide:text").data[1] == "Dog: n. A canine."
    assert load_dataset("gcide:headword").data == ["Cat", "Dog", "cat"]


def test_gcide_missing_package_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr(gcide, "GCIDE_DIR", tmp_path / "absent")
    gcide.entries.cache_clear()
    try:
        assert not DATASETS["gcide"].available()
        with pytest.raises(NotAvailableError, match="dict-gcide"):
            load_dataset("gcide")
    finally:
        gcide.entries.cache_clear()


@pytest.mark.skipif(not gcide.available(), reason="Debian dict-gcide not installed")
def test_gcide_real_dictionary():
    gcide.entries.cache_clear()
    items = load_dataset("gcide")
    assert len(items) > 100_000
    assert all(items.data[:1000])


ENTRY = ('Run \\Run\\, v. i. [OE. rinnen.]\n   1. To move swiftly.\n   [1913 Webster]\n\n'
         '   2. Of voluntary action:\n      (a) To go swiftly.\n          [1913 Webster]\n\n'
         '                As from a bear a man would run for life. --Shak.\n          [1913 Webster]\n'
         '      (b) To flee, as from fear.\n          [1913 Webster]\n\n'
         '   3. To pass; to elapse.\n   [1913 Webster]\n\n'
         '   Syn: To hasten; to hurry.\n\n'
         '   Note: Used with various adverbs.\n\n'
         '   {To run down}, {To run off} (Naut.), to chase till the pursued\n      is exhausted.\n\n'
         '   3. A second third sense.\n')


def test_split_entry_gives_each_further_sense_sub_sense_and_phrase_one_item():
    out = gcide.split_entry("run#2", ENTRY)
    assert [i for i, _, _ in out] == ["run#2/2", "run#2/2b", "run#2/3", "run#2/{to run down}", "run#2/3#2"]
    text = dict((i, t) for i, _, t in out)
    # the sense keeps its (a) and the quotation under it (citation and letters dropped, as in an entry); (b) stands
    # alone; sense 1 stays the entry's
    assert text["run#2/2"] == "Of voluntary action: To go swiftly. As from a bear a man would run for life."
    assert text["run#2/2b"] == "To flee, as from fear."
    assert text["run#2/3"] == "To pass; to elapse."  # the synonym list and the usage note are not the sense
    assert text["run#2/{to run down}"] == "to chase till the pursued is exhausted."  # the phrase names cut off
    assert out[3][1] == "To run down" and out[0][1] == ""  # a phrase's headword is the phrase
    assert [gcide.group(i) for i, _, _ in out] == ["run", "run", "run", "to run down", "run"]
    assert {gcide.entry_of(i) for i, _, _ in out} == {"run#2"}
    assert gcide.group("and/or/2") == "and/or" and gcide.entry_of("and/or") == "and/or"


def test_gcide_senses_dataset_reads_the_further_senses(tiny_dict):
    body = ENTRY
    data = gzip.open(tiny_dict / "gcide.dict.dz").read() + body.encode()
    with gzip.open(tiny_dict / "gcide.dict.dz", "wb") as fh:
        fh.write(data)
    with open(tiny_dict / "gcide.index", "a") as fh:
        fh.write(f"Run\t{_b64(len(data) - len(body.encode()))}\t{_b64(len(body.encode()))}\n")
    gcide.further.cache_clear()
    try:
        items = load_dataset("gcide-senses")
        assert items.ids == ["run/2", "run/2b", "run/3", "run/{to run down}", "run/3#2"]
        assert load_dataset("gcide-senses:headword").data[:4] == ["Run", "Run", "Run", "To run down"]
        # a sense falls on its entry's side of the split
        assert set(load_dataset("gcide-senses@" + hash_split("run")).ids) == set(items.ids)
    finally:
        gcide.further.cache_clear()

