"""The GNU Collaborative International Dictionary of English (Debian `dict-gcide`) as a text dataset.

dictd format: `gcide.index` holds one line per headword, `headword TAB offset TAB length`, offset and length in
dictd's base64 alphabet (A-Z a-z 0-9 + /, most significant digit first), into the uncompressed `gcide.dict.dz`
(dictzip, a gzip file). Several headwords can point at one entry; each entry is kept once, under its first
headword. Ids are the lower-cased headword, with `#2`, `#3`, ... for further entries of the same headword.

Views: `definition` (default) the entry's text without its headword line's pronunciation, etymologies, source
tags ([1913 Webster]) and markup, cut to its first `MAX_WORDS` words; `headword`; `text` ("headword: definition").
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
    text = _MARK.sub(_markup, entry)
    text = _PRON.sub(" ", text, count=1)
    text = _PRON_PAREN.sub(" ", _BRACKET.sub(" ", text))
    first, _, rest = text.partition("\n")
    words = first.split()[1:]  # headword dropped; part-of-speech words stay
    text = " ".join(words) + "\n" + rest
    text = _DEFLINE.sub(" ", text).replace("{", "").replace("}", "")
    words = [w for w in text.split() if not w.startswith("--")]
    return " ".join(words[:max_words]).strip(" ,;")


@lru_cache(maxsize=1)
def entries() -> tuple[tuple[str, str, str], ...]:
    """(id, headword, definition) of every dictionary entry, in index order."""
    if not available():
        raise NotAvailableError("dataset 'gcide' needs the Debian package dict-gcide "
                                "(`apt-get install dict-gcide`, done by `make install` when run as root)")
    with gzip.open(GCIDE_DIR / "gcide.dict.dz", "rb") as fh:
        data = fh.read()
    seen: set[tuple[int, int]] = set()
    count: dict[str, int] = {}
    out = []
    with open(GCIDE_DIR / "gcide.index", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or parts[0].startswith("00-"):
                continue
            head, off, length = parts[0], b64_number(parts[1]), b64_number(parts[2])
            if (off, length) in seen:
                continue
            seen.add((off, length))
            definition = clean_definition(data[off : off + length].decode("utf-8", errors="replace"))
            if not definition:
                continue
            key = head.lower()
            count[key] = count.get(key, 0) + 1
            out.append((key if count[key] == 1 else f"{key}#{count[key]}", head, definition))
    return tuple(out)
