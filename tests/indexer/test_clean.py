"""Cleaning: the seed article exactly, junk patterns, repeats, and no loss of real text."""

from __future__ import annotations

import gzip
import json
import re

from indexer.clean import clean_article, clean_body, is_junk_line, normalize_text
from indexer.sources import CorpusReader
from tests.conftest import REUTERS, SEED, WIKINEWS, shared_data


def seed_article():
    (raw,) = list(CorpusReader([SEED]))
    return raw, clean_article(raw)


def test_seed_body_is_exactly_the_real_paragraphs():
    raw, article = seed_article()
    assert article.title == "Russia-backed Syrian army carry on anti-ISIS push"
    lines = [line.strip() for line in raw.body.splitlines() if line.strip()]
    first = next(i for i, line in enumerate(lines) if line.startswith("Syrian government forces backed by Russian air strikes"))
    last = next(i for i, line in enumerate(lines) if line.endswith("But we did not lose hope.”"))
    assert article.body.split("\n\n") == lines[first : last + 1]


def test_seed_junk_and_caption_are_gone():
    _, article = seed_article()
    for junk in ("bloggers like this", "Powered by", "Privacy Policy", "CIA chief visited Moscow",
                 "Erdogan: 5,359", "Systron", "handout picture provided by SANA"):
        assert junk not in article.body
    assert "Russian withdrawal" in article.body  # a real sub-heading stays


def test_junk_lines_and_real_sentences():
    for junk in ("%d bloggers like this:", "Powered by WordPress", "© 2014 Example Media. All rights reserved",
                 "| About Us | Privacy Policy | Terms of Use |", "Share this:", "Advertisement",
                 "Home • World • Business • Sport"):
        assert is_junk_line(junk), junk
    for real in ("Share prices fell 3 pct in early trading.", "Print media revenue rose.",
                 "Copyright lawyers said the ruling was a landmark for authors.",
                 "The vote was 52-48 | a narrow margin, officials said | and contested.",
                 "Related companies also reported gains, the exchange said."):
        assert not is_junk_line(real), real


def test_repeated_paragraphs_keep_the_first_copy_except_a_leading_caption():
    body = "Caption of a photo.\n\nCaption of a photo.\n\nFirst real paragraph.\n\nSecond.\n\nFirst real paragraph."
    assert clean_body(body) == "First real paragraph.\n\nSecond."


def test_normalize_nfc_spaces_and_invisibles():
    assert normalize_text("Cafe\u0301\u00a0\u00a0crème\u200b\tbar \r\nnext") == "Café crème bar\nnext"


def test_trailing_related_headlines_go_but_a_closing_sentence_stays():
    body = "A real paragraph that ends the story.\n\nMore on this\nAnother headline here"
    assert clean_body(body) == "A real paragraph that ends the story."
    assert clean_body("One.\n\nThe final line says so.") == "One.\n\nThe final line says so."


def test_wikinews_dateline_removed_and_text_kept():
    records = [json.loads(line) for line in open(shared_data(WIKINEWS), encoding="utf-8")]
    for record in records:
        body = clean_body(record["body"], record["title"])
        assert not re.match(r"\w+day, \w+ \d+, \d{4}\s", body + "\n"), record["id"]
        _assert_little_lost(record["body"], body, record["id"], allow_dateline=True)


def _assert_little_lost(original: str, cleaned: str, ident: str, allow_dateline: bool = False) -> None:
    # Verbatim repeats are not real text, so loss is measured against the distinct paragraphs.
    paragraphs = dict.fromkeys(p.strip() for p in normalize_text(original).split("\n\n") if p.strip())
    if allow_dateline:
        paragraphs = {p: None for p in paragraphs if not p.endswith(("2019", "2020", "2021")) or len(p) > 40}
    before = sum(len("".join(p.split())) for p in paragraphs)
    after = len("".join(cleaned.split()))
    if before:
        assert (before - after) / before <= 0.05, f"{ident} lost {(before - after) / before:.1%} of its text"


def test_no_reuters_body_loses_more_than_a_few_percent():
    files = sorted(shared_data(REUTERS).glob("corpus-*.jsonl.gz"))
    assert len(files) == 7
    seen = 0
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                _assert_little_lost(record["body"], clean_body(record["body"], record["title"]), record["id"])
                seen += 1
    assert seen == 19043
