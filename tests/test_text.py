"""Words in any script, the one normaliser, stop words, and the exact near-duplicate join."""
import itertools
import re
import string

import pytest
from hypothesis import given, settings, strategies as st

from workbench import corpus, splits, text, training_data as td
from workbench.parsing import QAPair
from workbench.providers.local_trainer import answer_words

ascii_text = st.text(alphabet=string.printable, max_size=60)


# --- words and normalize ---------------------------------------------------------------------------

def test_chinese_and_japanese_have_a_word_per_character_hangul_and_marked_scripts_whole_words():
    assert text.words("如何重置我的密码？") == ["如", "何", "重", "置", "我", "的", "密", "码"]
    assert text.words("パスワードをリセット") == ["パ", "ス", "ワ", "ー", "ド", "を", "リ", "セ", "ッ", "ト"]
    assert text.words("API密钥v2在哪里") == ["api", "密", "钥", "v2", "在", "哪", "里"]
    assert text.words("비밀번호 재설정") == ["비밀번호", "재설정"]                      # Hangul is spaced
    assert text.words("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]                          # vowel signs stay in the word
    assert text.words("Ｗｉ－Ｆｉ ﬁle x² Straße") == ["wi", "fi", "file", "x2", "strasse"]   # NFKC, case folding
    assert text.words("cafe\u0301") == text.words("café") == ["café"]                # composed or not
    assert text.words("snake_case, don't 3.5") == ["snake", "case", "don", "t", "3", "5"]
    assert text.words("don't 3.5 U.S.", joiners=".'") == ["don't", "3.5", "u.s"]


def test_normalize_joins_words_with_single_spaces():
    assert text.normalize("  How do I   RESET my password?!") == "how do i reset my password"
    assert text.normalize("如何重置我的密码？") == text.normalize("如何 重置 我的密码") == "如 何 重 置 我 的 密 码"
    assert text.normalize("...") == ""


@settings(max_examples=300, deadline=None)
@given(ascii_text)
def test_english_words_and_normalisation_are_what_the_modules_had(s):
    """The regexes the modules used, on ASCII text: the same words, so English figures and ids stay."""
    assert text.words(s) == re.findall(r"[a-z0-9]+", s.lower())
    assert text.normalize(s) == " ".join(re.findall(r"[^\W_]+", s.casefold()))      # training_data.normalized
    assert answer_words(s) == re.findall(r"[a-z0-9]+(?:[.'][a-z0-9]+)*", s.lower())
    # The general pattern agrees with the ASCII fast path.
    assert text._pattern("").findall(text.fold(s)) == text.words(s)
    assert text._pattern(".'").findall(text.fold(s)) == text.words(s, ".'")


def test_ids_of_english_questions_are_unchanged():
    # Values computed by the previous corpus.pair_id (training_data.normalized, before text.py).
    assert corpus.pair_id("qa.jsonl", "How do I reset my password?") == "qa.jsonl:b2e772bab797"
    assert corpus.pair_id("qa.jsonl", "Café opening hours — today?") == "qa.jsonl:d2f4a24bf198"


# --- stop words and content words ------------------------------------------------------------------

def test_stop_words_are_the_union_of_the_old_lists():
    metrics_list = ("a an the of to in on for and or is are was were be by at from as it its this that with can "
                    "you your i my we our do does did not no").split()
    extractive_list = ("a an the of to in on for and or is are was were be been do does did how what which who "
                       "when where why can could i you my your it its this that with by at from as if not no "
                       "yes").split()
    index_list = extractive_list + "there their our we us should would will".split()
    assert text.STOP_WORDS == set(metrics_list) | set(extractive_list) | set(index_list)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["the", "How", "invoices", "is", "bus", "days", "Plans", "us", "yes", "a1s", "x",
                                 "?", ",", " ", "PASSWORDS", "class"]), max_size=12).map(" ".join))
def test_content_words_keep_index_behaviour_for_english(s):
    stop = text.STOP_WORDS
    old = {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in re.findall(r"[a-z0-9]+", s.lower())
           if w not in stop}
    assert text.content_words(s) == old


def test_content_words():
    assert text.content_words("How do I reset my passwords?") == {"reset", "password"}
    assert text.content_words("重置密码") == {"重", "置", "密", "码"}


# --- near-duplicates: exact, against all pairs -----------------------------------------------------

def brute_force(sets_a, sets_b, threshold, within):
    pairs = (itertools.combinations(range(len(sets_a)), 2) if within
             else itertools.product(range(len(sets_a)), range(len(sets_b))))
    out = []
    for i, j in pairs:
        a, b = sets_a[i], (sets_a if within else sets_b)[j]
        common = len(a & b)
        if common and common / (len(a) + len(b) - common) >= threshold:
            out.append((i, j, common / (len(a) + len(b) - common)))
    return sorted(out)


word_sets = st.lists(st.sets(st.integers(0, 14), max_size=12), max_size=30)
thresholds = st.one_of(st.sampled_from([0.8, 0.75, 0.7, 2 / 3, 0.6, 0.5, 0.9, 1.0, 1 / 3, 0.55]),
                       st.floats(0.05, 1.0))


def as_text(s):
    return " ".join(f"w{k}" for k in sorted(s, key=lambda k: (k * 7) % 15))


@pytest.mark.timeout(120)
@settings(max_examples=400, deadline=None)
@given(word_sets, thresholds)
def test_near_duplicate_pairs_are_exactly_the_brute_force_pairs(sets, threshold):
    texts = [as_text(s) for s in sets]
    assert td.near_duplicate_pairs(texts, threshold) == brute_force([set(s) for s in sets], None, threshold, True)


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None)
@given(word_sets, word_sets, thresholds)
def test_near_duplicate_pairs_between_are_the_cross_pairs_of_the_whole(a, b, threshold):
    a_texts, b_texts = [as_text(s) for s in a], [as_text(s) for s in b]
    expected = brute_force([set(s) for s in a], [set(s) for s in b], threshold, False)
    assert td.near_duplicate_pairs_between(a_texts, b_texts, threshold) == expected
    n = len(a)
    whole = [(i, j - n, jac) for i, j, jac in td.near_duplicate_pairs(a_texts + b_texts, threshold) if i < n <= j]
    assert whole == expected


@pytest.mark.timeout(60)
def test_near_duplicates_at_the_default_threshold_on_sentences():
    texts = ["How do I reset my password?", "how do I reset my password", "How do I reset my account password?",
             "How can I reset my password?", "What is the refund window?", "", "?!"]
    pairs = td.near_duplicate_pairs(texts)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (0, 2), (1, 2)]
    assert pairs[1][2] == pytest.approx(6 / 7)                          # 6 shared of 7 words
    assert td.near_duplicate_pairs([]) == [] and td.near_duplicate_pairs_between([], texts) == []


@pytest.mark.timeout(60)
def test_chinese_paraphrases_are_near_duplicates_and_kept_on_one_side():
    texts = ["如何重置我的密码？", "如何重置我的密码", "如何才能重置我的密码", "今天的发票什么时候到期"]
    assert [(i, j) for i, j, _ in td.near_duplicate_pairs(texts)] == [(0, 1), (0, 2), (1, 2)]
    assert td.near_duplicate_pairs(texts)[1][2] == pytest.approx(0.8)   # 8 shared characters of 10
    pairs = [QAPair(q, "在设置页面", id=f"p{i}") for i, q in enumerate(texts[:3])]
    pairs += [QAPair(f"Unrelated question {i} about topic {i}?", f"{i}", id=f"x{i}") for i in range(20)]
    split = splits.split_pairs(pairs, test_share=0.3, seed=1, dev_share=0)
    side = next(s for s in (split.train, split.test) if "p0" in s)
    assert {"p1", "p2"} <= set(side) and split.guarded_links >= 2
