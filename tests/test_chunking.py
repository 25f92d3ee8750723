"""Chunk boundaries worked by hand (o200k_base: 'alpha' and ' alpha' are one token each)."""
import pytest

from workbench.chunking import ChunkSettings, chunk_document, count, sentence_spans, size_stats

WORDS = " ".join(["alpha"] * 25)  # 25 tokens


def test_fixed_windows_with_overlap():
    chunks = chunk_document("d", "D", WORDS, ChunkSettings(strategy="fixed", max_tokens=10, overlap_tokens=3))
    # Windows start every 10 - 3 = 7 tokens: 0-10, 7-17, 14-24, 21-25.
    assert [c.tokens for c in chunks] == [10, 10, 10, 4]
    assert [c.position for c in chunks] == [0, 1, 2, 3]
    # Character spans: token i starts at 6 * i - 1 (" alpha"), the first at 0.
    assert (chunks[0].start, chunks[1].start) == (0, 7 * 6)
    assert all(WORDS[c.start:c.end].strip() == c.text for c in chunks)


def test_sentence_packing_respects_the_budget():
    # Sentences of 5, 6 and 2 tokens, twice.
    text = "One two three four. Five six seven eight nine. Ten. " * 2
    spans = sentence_spans(text)
    assert [count(text[a:b]) for a, b in spans] == [5, 6, 2, 5, 6, 2]
    chunks = chunk_document("d", "D", text.strip(), ChunkSettings(strategy="sentences", max_tokens=14,
                                                                 overlap_tokens=0))
    # 5 + 6 + 2 = 13 tokens (+1 for the joining space still fits 14); the next sentence would not.
    assert [c.text for c in chunks] == ["One two three four. Five six seven eight nine. Ten.",
                                        "One two three four. Five six seven eight nine. Ten."]
    assert all(c.tokens <= 14 for c in chunks)


def test_sentence_packing_with_overlap_repeats_trailing_sentences():
    text = "One two three four. Five six seven eight nine. Ten. Eleven twelve thirteen fourteen."
    chunks = chunk_document("d", "D", text, ChunkSettings(strategy="sentences", max_tokens=14, overlap_tokens=3))
    # The 2-token "Ten." fits the 3-token overlap, so the second chunk starts with it.
    assert chunks[0].text.endswith("Ten.")
    assert chunks[1].text.startswith("Ten.")


def test_a_sentence_longer_than_the_budget_is_cut_into_windows():
    chunks = chunk_document("d", "D", WORDS + ".", ChunkSettings(strategy="sentences", max_tokens=10,
                                                                 overlap_tokens=0))
    assert [c.tokens for c in chunks] == [10, 10, 6]


def test_heading_sections_keep_their_path():
    text = ("Intro line before any heading.\n\n# Guide\n\nTop text.\n\n## Install\n\nRun the installer.\n\n"
            "### Windows\n\nUse the MSI.\n\n## Use\n\nStart the timer.")
    chunks = chunk_document("g.md", "Guide", text, ChunkSettings(strategy="headings", max_tokens=200))
    assert [c.heading_path for c in chunks] == ["", "Guide", "Guide > Install", "Guide > Install > Windows",
                                                "Guide > Use"]
    assert chunks[3].text == "### Windows\n\nUse the MSI."
    assert all(text[c.start:c.end] == c.text for c in chunks)


def test_long_sections_are_packed_inside_the_section():
    body = " ".join(f"Sentence number {i} is here." for i in range(40))
    text = f"# A\n\n{body}\n\n# B\n\nShort."
    chunks = chunk_document("d", "D", text, ChunkSettings(strategy="headings", max_tokens=50, overlap_tokens=0))
    assert {c.heading_path for c in chunks} == {"A", "B"}
    assert all(c.tokens <= 50 for c in chunks)
    assert chunks[-1].text == "# B\n\nShort."


def test_abbreviations_do_not_end_sentences():
    text = "Ask Dr. Smith about it. Then e.g. wait."
    assert [text[a:b] for a, b in sentence_spans(text)] == ["Ask Dr. Smith about it.", "Then e.g. wait."]


def test_settings_are_validated():
    with pytest.raises(ValueError, match="overlap_tokens \\(50\\) must be smaller than max_tokens \\(50\\)"):
        ChunkSettings(max_tokens=50, overlap_tokens=50)
    assert size_stats([]) == {"chunks": 0}
