"""Words of a text in any script, the one normaliser for comparing questions, and English stop words.

A word is a run of letters, digits and combining marks of any script (so Hindi, Thai or Arabic words are
not cut at their vowel signs). Han characters and kana are written without spaces between words, so each
one is a word of its own, as BERT's tokenizer and the MLQA and CMRC 2018 evaluations split Chinese;
Hangul is written with spaces and is split like Latin script. Thai, Lao, Khmer and Burmese, also
unspaced, would need a dictionary to split; a run of them stays one word. Text is compared after Unicode
NFKC and case folding, so full-width letters, ligatures and case do not make two questions differ.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# The union of the lists the modules used before this one (index.py's, which holds the others'), in English.
STOP_WORDS = frozenset(
    "a an the of to in on for and or is are was were be been do does did how what which who when where why can "
    "could i you my your it its this that with by at from as if not no yes there their our we us should would "
    "will".split())

# Scripts written without spaces between words: each letter of these is a word of its own.
_UNSPACED = ((0x3005, 0x3007), (0x3021, 0x3029), (0x3038, 0x303C),  # 々〆〇, Hangzhou numerals
             (0x3040, 0x30FF), (0x31F0, 0x31FF),                     # Hiragana, Katakana
             (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),   # Han: extension A, unified, compatibility
             (0xFF66, 0xFF9F), (0x1AFF0, 0x1B16F),                   # half-width katakana, kana supplements
             (0x20000, 0x3FFFF))                                     # Han: extensions B to I


def _char_class(ranges: list[tuple[int, int]]) -> str:
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


def _mark_ranges() -> list[tuple[int, int]]:
    """Code point ranges of the combining marks (categories Mn, Mc, Me): planes 0, 1 and 14 hold them all."""
    ranges: list[tuple[int, int]] = []
    for c in (*range(0x20000), *range(0xE0000, 0xE1000)):
        if unicodedata.category(chr(c))[0] == "M":
            if ranges and ranges[-1][1] == c - 1:
                ranges[-1] = (ranges[-1][0], c)
            else:
                ranges.append((c, c))
    return ranges


@lru_cache(maxsize=8)
def _ascii_pattern(joiners: str) -> re.Pattern[str]:
    """The same words in ASCII text (folded to lower case), three times faster to find."""
    run = "[a-z0-9]+"
    return re.compile(f"{run}(?:[{re.escape(joiners)}]{run})*" if joiners else run)


@lru_cache(maxsize=8)
def _pattern(joiners: str) -> re.Pattern[str]:
    """Words: an unspaced-script letter alone, or a run of other letters and digits with their marks (and,
    with joiners, such runs joined by one joiner character between them)."""
    unspaced, marks = _char_class(list(_UNSPACED)), _char_class(_mark_ranges())
    letter = f"[^\\W_{unspaced}]"                           # \w without "_": letters and digits
    run = f"{letter}(?:{letter}+|[{marks}]+)*"
    if joiners:
        run = f"{run}(?:[{re.escape(joiners)}]{run})*"
    return re.compile(f"(?=[^\\W_])[{unspaced}][{marks}]*|{run}")


def fold(text: str) -> str:
    """Unicode NFKC and case folding (NFKC again after folding, which can decompose a character)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)


def words(text: str, joiners: str = "") -> list[str]:
    """The folded words of a text, in order: runs of letters and digits of any script, and each Han or kana
    character on its own. Characters in `joiners` between two words join them ("3.5" and "don't" with ".'")."""
    if text.isascii():
        return _ascii_pattern(joiners).findall(text.lower())
    return _pattern(joiners).findall(fold(text))


def normalize(text: str) -> str:
    """The text's words joined by single spaces: the key two questions are compared by (and a pair's id
    is hashed from), so case, punctuation, spacing and Unicode variants do not make them differ."""
    return " ".join(words(text))


def content_words(text: str) -> set[str]:
    """The text's words without STOP_WORDS, with a plural 's' dropped from words of four letters or more."""
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words(text) if w not in STOP_WORDS}
