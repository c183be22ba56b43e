"""Chunking: sentence-aware passages in word pieces, with offsets, coverage and overlap."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.chunk import (
    MAX_PASSAGES_PER_ARTICLE,
    _paragraphs,
    chunk_article,
    passage_id,
    plan_passages,
    sentence_spans,
)
from indexer.clean import clean_article
from indexer.errors import NewsearchError
from indexer.records import Article
from indexer.sources import CorpusReader
from tests.helpers import SEED


def article(body: str, title: str = "T") -> Article:
    return Article("a-1", title, body, None, None, None, "h")


def covered(body: str, passages) -> bool:
    mask = [False] * len(body)
    for p in passages:
        for i in range(p.start, p.end):
            mask[i] = True
    return all(mask[i] or body[i].isspace() for i in range(len(body)))


def test_seed_passages_respect_the_limit_and_overlap(count_tokens):
    (raw,) = list(CorpusReader([SEED]))
    art = clean_article(raw)
    passages = chunk_article(art, count_tokens, max_tokens=200, overlap=1)
    assert len(passages) >= 4
    for p in passages:
        assert art.body[p.start : p.end] == p.text
        assert count_tokens(p.text) <= 200
        assert p.tokens == count_tokens(p.text)
        assert art.title not in p.text  # the title is context for the embedder, not stored text
    for a, b in zip(passages, passages[1:]):
        assert b.start < a.end, "consecutive passages share about one sentence"
    assert covered(art.body, passages)
    assert [p.ordinal for p in passages] == list(range(len(passages)))


def test_a_sentence_is_never_split_unless_it_alone_is_too_long(count_tokens):
    body = " ".join(f"Sentence number {i} talks about the harvest in Bahia." for i in range(60))
    spans = {(s, e) for s, e in sentence_spans(body)}
    for (start, end), _ in plan_passages(body, count_tokens, 50, overlap=0):
        assert any(s == start for s, _ in spans) and any(e == end for _, e in spans)
    long_sentence = "word " * 400 + "end."
    plans = plan_passages(long_sentence, count_tokens, 64, overlap=1)
    assert len(plans) > 1 and all(tokens <= 64 for _, tokens in plans)


def test_a_giant_word_is_cut_inside(count_tokens):
    body = "x" * 3000 + " tail."
    plans = plan_passages(body, count_tokens, 32)
    assert all(count_tokens(body[s:e]) <= 32 for (s, e), _ in plans)
    assert plans[0][0][0] == 0 and plans[-1][0][1] == len(body)


def test_passage_ids_are_stable_and_distinct():
    assert passage_id("reuters-1", 0) == passage_id("reuters-1", 0)
    assert passage_id("reuters-1", 1) == passage_id("reuters-1", 0) + 1
    assert passage_id("reuters-1", 0) != passage_id("reuters-2", 0)
    assert 0 < passage_id("reuters-1", MAX_PASSAGES_PER_ARTICLE - 1) < 2**63


_text = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=80),
        st.sampled_from(["Mr. Smith said 5.5 pct.", "U.S. output rose!", "“Quote,” he said.", "\n\n", "é\u0301 ✓ 漢字。", "  "]),
    ),
    max_size=40,
).map(" ".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_text, limit=st.integers(min_value=8, max_value=120), overlap=st.integers(min_value=0, max_value=2))
def test_properties_cover_slice_and_limit(count_tokens, body, limit, overlap):
    passages = chunk_article(article(body), count_tokens, max_tokens=limit, overlap=overlap)
    for p in passages:
        assert body[p.start : p.end] == p.text
        assert p.text == p.text.strip() and p.text
        assert count_tokens(p.text) <= limit
    assert covered(body, passages)
    assert all(a.start < b.start for a, b in zip(passages, passages[1:]))


def test_the_lead_is_a_passage_of_its_own_when_asked(count_tokens):
    body = ("Ford raised its second quarter output plans. The trade paper said so on Monday. "
            "Analysts had expected a cut.\n\nDealers reported strong sales of trucks in March.")
    passages = chunk_article(article(body), count_tokens, max_tokens=200, overlap=1, lead_sentences=2)
    lead, *rest = passages
    assert lead.text == "Ford raised its second quarter output plans. The trade paper said so on Monday."
    assert (lead.start, lead.ordinal) == (0, 0) and lead.tokens == count_tokens(lead.text)
    assert [p.text for p in rest] == [p.text for p in chunk_article(article(body), count_tokens, 200, 1)]
    assert [p.ordinal for p in passages] == list(range(len(passages)))
    short = "One sentence only.\n\nA second paragraph."
    only = chunk_article(article(short), count_tokens, max_tokens=200, overlap=1, lead_sentences=2)
    assert only[0].text == "One sentence only." and len(only) == 2  # the lead stops at the first paragraph
    same = chunk_article(article("Just this."), count_tokens, max_tokens=200, overlap=1, lead_sentences=2)
    assert [p.text for p in same] == ["Just this."]  # no second copy when the first passage is the lead


def test_sentence_ends_fast_path_agrees_with_blingfire():
    import blingfire

    from indexer.chunk import _sentence_ends
    from tests.helpers import CORPUS

    texts = [clean_article(raw).body for raw in CorpusReader([CORPUS])]
    texts += ["One.", "Mr. Smith went to Washington. He left at 5 p.m. sharp!", "x" * 3000, "Café au lait. Très bon.",
              "A sentence of a long text. " * 12000, "Short again. Two."]  # beyond the kept buffer, then back
    ascii_texts = 0
    for text in texts:
        assert _sentence_ends(text) == [end for _, end in blingfire.text_to_sentences_and_offsets(text)[1]]
        ascii_texts += text.isascii()
    assert ascii_texts > 10
    assert _sentence_ends("") == []  # (blingfire's own wrapper fails on an empty text)


# The paragraph rule as a regular expression: clear, but it spends more time than the splitter itself.
_PARAGRAPH = re.compile(r"\S(?:.*?\S)?(?=\n\s*\n|\s*$)", re.DOTALL)


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(["a", "b", ".", " ", "\n", "\t", "\r", "\xa0", "\u2028", "\x0c"]),
                    max_size=30))
def test_paragraphs_part_at_blank_lines_and_join_one_character_ones(text):
    assert _paragraphs(text) == [m.span() for m in _PARAGRAPH.finditer(text)]


def test_paragraph_examples():
    assert _paragraphs("  First one.\n\n\nSecond\none.\n \n") == [(2, 12), (15, 26)]
    assert _paragraphs("*\n\nA bullet's text.\n\nNext.") == [(0, 19), (21, 26)]  # the bullet joins its text
    assert _paragraphs(" \n\n \t") == []


def test_with_lead_for_untitled_only_an_article_without_a_title_gets_the_lead(count_tokens):
    body = ("Ford raised its second quarter output plans. The trade paper said so on Monday. "
            "Analysts had expected a cut.\n\nDealers reported strong sales of trucks in March.")
    plain = [p.text for p in chunk_article(article(body), count_tokens, 200, 1)]
    titled = chunk_article(article(body, title="Ford raises output"), count_tokens, 200, 1, 2, "untitled")
    untitled = chunk_article(article(body, title=""), count_tokens, 200, 1, 2, "untitled")
    assert [p.text for p in titled] == plain  # the title stands for the article already
    assert [p.text for p in untitled] == ["Ford raised its second quarter output plans. The trade paper said so on "
                                          "Monday.", *plain]
    everyone = chunk_article(article(body, title="Ford raises output"), count_tokens, 200, 1, 2, "all")
    assert [p.text for p in everyone] == [p.text for p in untitled]
    assert [p.text for p in chunk_article(article(body, title=""), count_tokens, 200, 1, 2, "none")] == plain
    assert [p.text for p in chunk_article(article(body, title=""), count_tokens, 200, 1, 0, "untitled")] == plain
    with pytest.raises(NewsearchError, match="lead_for must be one of"):
        chunk_article(article(body), count_tokens, 200, 1, 2, "titled")
