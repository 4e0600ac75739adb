"""The GNU Collaborative International Dictionary of English (Debian `dict-gcide`) as a text dataset.

dictd format: `gcide.index` holds one line per headword, `headword TAB offset TAB length`, offset and length in
dictd's base64 alphabet (A-Z a-z 0-9 + /, most significant digit first), into the uncompressed `gcide.dict.dz`
(dictzip, a gzip file). Several headwords can point at one entry; each entry is kept once, under its first
headword. Ids are the lower-cased headword, with `#2`, `#3`, ... for further entries of the same headword.

Views: `definition` (default) the entry's text without its headword line's pronunciation, etymologies, source
tags ([1913 Webster]) and markup, cut to its first `MAX_WORDS` words; `headword`; `text` ("headword: definition").

`further()` (dataset `gcide-senses`): what an entry's first paragraph leaves out, one item each — every numbered
sense from the second on (id `<entry id>/<n>`, headword the entry's), the lettered sub-senses after a sense's (a)
(`<entry id>/<n><letter>`) and every phrase defined inside an entry ("{In banc}, ... in full court", id
`<entry id>/{in banc}`, headword the phrase). The 203,645 lines of `gcide.index` (the "~200k entries" one reads
of the package) name 126,240 distinct entries, 126,236 with a definition; with their 73,872 further senses and
phrases the dictionary holds 200,108 definitions (`group()`: the headword a lookup of an item is).
"""

from __future__ import annotations

import gzip
import re
from functools import lru_cache
from pathlib import Path

from repspace.errors import NotAvailableError

GCIDE_DIR = Path("/usr/share/dictd")
MAX_WORDS = 64
_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_CHAR = {"ae": "ae", "AE": "AE", "oe": "oe", "OE": "OE", "add": "a", "eth": "th", "thorn": "th"}
_MARK = re.compile(r"\[(?:[=`'\"^~.,]|&)?([a-zA-Z]{1,5})\]")
_BRACKET = re.compile(r"\[[^\[\]]*\]")
_PRON = re.compile(r"\\[^\\]*\\")
_PRON_PAREN = re.compile(r"\([^()]*[*\"][^()]*\)")  # leftover pronunciations: (-e"th * ps)
_DEFLINE = re.compile(r"^\s*(?:\d+\.|\([a-z]\))\s+", re.M)


def b64_number(text: str) -> int:
    """dictd's base64 number: 'BNy' -> 1*64**2 + 13*64 + 50."""
    value = 0
    for c in text:
        value = value * 64 + _B64[c]
    return value


def available() -> bool:
    return (GCIDE_DIR / "gcide.index").is_file() and (GCIDE_DIR / "gcide.dict.dz").is_file()


def _markup(m: re.Match) -> str:
    s = m.group(1)
    return _CHAR.get(s, s if len(s) == 1 else m.group(0))


def clean_definition(entry: str, max_words: int = MAX_WORDS) -> str:
    """An entry's definition text: headword line's pronunciation, [...] groups and {} braces removed, cut to
    `max_words` words. The headword itself (the first word) is dropped."""
    text = _PRON.sub(" ", _MARK.sub(_markup, entry), count=1)
    first, _, rest = _PRON_PAREN.sub(" ", _BRACKET.sub(" ", text)).partition("\n")
    return _words(" ".join(first.split()[1:]) + "\n" + rest, max_words)  # headword dropped; part of speech stays


def _clean(text: str, max_words: int) -> str:
    """A sense's or phrase's text: markup, [...] groups, leftover pronunciations, sense numbers, braces and citations
    (--Shak.) removed, cut to `max_words` words."""
    return _words(_PRON_PAREN.sub(" ", _BRACKET.sub(" ", _MARK.sub(_markup, text))), max_words)


def _words(text: str, max_words: int) -> str:
    text = _DEFLINE.sub(" ", text).replace("{", "").replace("}", "")
    words = [w for w in text.split() if not w.startswith("--")]
    return " ".join(words[:max_words]).strip(" ,;")


def _entries_raw():
    """(id, headword, definition, raw entry text) of every dictionary entry with a definition, in index order."""
    if not available():
        raise NotAvailableError("dataset 'gcide' needs the Debian package dict-gcide "
                                "(`apt-get install dict-gcide`, done by `make install` when run as root)")
    with gzip.open(GCIDE_DIR / "gcide.dict.dz", "rb") as fh:
        data = fh.read()
    seen: set[tuple[int, int]] = set()
    count: dict[str, int] = {}
    with open(GCIDE_DIR / "gcide.index", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or parts[0].startswith("00-"):
                continue
            head, off, length = parts[0], b64_number(parts[1]), b64_number(parts[2])
            if (off, length) in seen:
                continue
            seen.add((off, length))
            raw = data[off : off + length].decode("utf-8", errors="replace")
            definition = clean_definition(raw)
            if not definition:
                continue
            key = head.lower()
            count[key] = count.get(key, 0) + 1
            yield key if count[key] == 1 else f"{key}#{count[key]}", head, definition, raw


@lru_cache(maxsize=1)
def entries() -> tuple[tuple[str, str, str], ...]:
    """(id, headword, definition) of every dictionary entry, in index order."""
    return tuple(e[:3] for e in _entries_raw())


_PARA = re.compile(r"\n[ \t]*\n")
_SENSE = re.compile(r"(\d+)\.\s")
_SUBSENSE = re.compile(r"\(([a-z])\)\s")
_PHRASES = re.compile(r"^(?:\s*\{[^{}]*\}\s*(?:\([^()]*\))?\s*[,;.]?)+")  # {In banc}, {In banco} (abl.), ...


def split_entry(entry_id: str, raw: str, max_words: int = MAX_WORDS) -> list[tuple[str, str, str]]:
    """(id, headword, definition) of what an entry's own first paragraph leaves out: its numbered senses from the
    second on (`<id>/2`; its sub-sense (a) with it), their further lettered sub-senses (`<id>/2b`) and the phrases
    it defines (`<id>/{phrase}`, headword the phrase; "" for the others), each with the lines that follow it up to
    the next of these, a synonym list or a usage note. An id met twice in one entry gets `#2`, `#3`, ..."""
    out: list[tuple[str, str, str]] = []
    item: list[str] = []  # [id, headword, text] being collected
    seen: dict[str, int] = {}
    sense = 0  # the numbered sense being read (>= 2), 0 elsewhere

    def start(item_id: str, head: str = "") -> None:
        close()
        seen[item_id] = seen.get(item_id, 0) + 1
        item.extend([item_id if seen[item_id] == 1 else f"{item_id}#{seen[item_id]}", head, ""])

    def close() -> None:
        if item and (text := _clean(item[2], max_words).lstrip(".: ")):
            out.append((item[0], item[1], text))
        item.clear()

    for para in _PARA.split(raw)[1:]:  # the first paragraph is the entry's own (its first words are the entry)
        s = para.lstrip()
        if m := _SENSE.match(s):
            sense = int(m.group(1)) if int(m.group(1)) >= 2 else 0
            close()
            if sense:
                start(f"{entry_id}/{sense}")
        elif s.startswith("{") and (m := _PHRASES.match(s)) and (phrase := _clean(s[1 : s.index("}")], 16)):
            sense = 0
            start(f"{entry_id}/{{{phrase.lower()}}}", phrase)
            s = s[m.end():]
        elif s.startswith(("Syn.", "Syn:", "Note:")):
            sense = 0
            close()
            continue
        for line in s.split("\n"):
            if sense and (m := _SUBSENSE.match(line.lstrip())) and m.group(1) != "a":
                start(f"{entry_id}/{sense}{m.group(1)}")
            if item:
                item[2] += line + "\n"
    close()
    return out


@lru_cache(maxsize=1)
def further() -> tuple[tuple[str, str, str], ...]:
    """(id, headword, definition) of every further sense and every phrase of the dictionary (`split_entry`), in
    index order; a sense's headword is its entry's."""
    out = []
    for entry_id, head, _, raw in _entries_raw():
        out.extend((i, h or head, text) for i, h, text in split_entry(entry_id, raw))
    return tuple(out)


def _parts(item_id: str) -> tuple[str, str]:
    """(entry id, what follows it) of an item id: `run#2/3` -> (`run#2`, `3`); an entry's own -> (id, "")."""
    base, sep, rest = item_id.partition("/")
    while sep and not (rest[:1].isdigit() or rest.startswith("{")):  # a headword with "/" in it (and/or)
        more, sep, rest = rest.partition("/")
        base += "/" + more
    return base, rest


def entry_of(item_id: str) -> str:
    """The id of the entry an item belongs to (itself for an entry)."""
    return _parts(item_id)[0]


def group(item_id: str) -> str:
    """The headword id a lookup of this item is (lower-cased): an entry's own id without `#n`, a sense's entry's,
    a phrase's the phrase."""
    base, rest = _parts(item_id)
    return rest[1 : rest.rindex("}")] if rest.startswith("{") else base.split("#")[0]
