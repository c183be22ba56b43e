"""Cleaning: the seed article exactly, junk patterns, repeats, and no loss of real text."""

from __future__ import annotations

import gzip
import json
import re

from indexer.clean import clean_article, clean_body, drop_language_tags, is_junk_line, normalize_text, strip_residue
from indexer.sources import CorpusReader
from tests.helpers import REUTERS, SEED, WIKINEWS, shared_data


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
    # Verbatim repeats are not real text, so loss is measured against the distinct paragraphs; residue (markup,
    # credits, wire signatures: tested rule by rule below) is not either.
    residue_free = "\n".join(map(strip_residue, normalize_text(original).split("\n")))
    paragraphs = dict.fromkeys(p.strip() for p in residue_free.split("\n\n") if p.strip())
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


# Residue found by bench/scan_residue.py. Wikinews text is quoted (CC BY 2.5, Wikinews contributors; each article is
# named by its id in ../shared/data/wikinews/wikinews_sample.jsonl, whose url field links it); the Reuters-shaped
# lines are made up, since Reuters text may not be committed.


def test_language_tag_goes_with_an_original_in_another_script():
    # wikinews-2020-248, https://en.wikinews.org/wiki/Seoul_city_Mayor_Park_Won-soon_found_dead,_South_Korean_police_confirm
    line = ('At about 5:17 p.m. his daughter reported to the police he "left home four–five hours ago after leaving '
            'words like a will, with his phone currently off." ((ko))Korean language: \u200d4~5시간 전에 아버지가 유언 '
            '같은 말을 남기고 집을 나갔는데 전화기가 꺼져 있다  Park\'s phone was last active in the north-east region of '
            'Seoul in Seongbuk-gu, The Korea Herald reported.')
    assert strip_residue(normalize_text(line)) == (
        'At about 5:17 p.m. his daughter reported to the police he "left home four–five hours ago after leaving '
        'words like a will, with his phone currently off." Park\'s phone was last active in the north-east region of '
        'Seoul in Seongbuk-gu, The Korea Herald reported.')
    # wikinews-2020-269 (https://en.wikinews.org/wiki/Living_with_HIV_during_COVID-19:_Wikinews_talks_to_HIV-positive
    # _sex_workers_about_how_pandemic_has_effected_their_lives): an original that mixes in English words
    mixed = ("So whatever I get, I get from the community.  I live with my community. ((hi))Hindi language: \u200dनहीं. "
             "क्योंकि मेरे mummy pappa मुझे स्वीकार नहीं करते हैं, वो अलग है।  और मैं उनके यहाँ नहीं जाता।  तो मेरा समुदाय जो "
             "भी है, हमें मिलता है हमारे समुदाय से।  हम अपने community के साथ रहते हैं।")
    assert strip_residue(normalize_text(mixed)) == "So whatever I get, I get from the community. I live with my community."


def test_language_tag_goes_but_a_latin_script_original_stays():
    # wikinews-2019-057 (https://en.wikinews.org/wiki/Polish_leader_Jaroslaw_Kaczynski_promises_stricter_punishments
    # _for_child_abusers): where the Polish name ends is not marked, so it is kept; only the tag goes
    line = "the conservative Law and Justice Party ((pl))Polish language: \u200dPrawo i Sprawiedliwość publicly declared"
    assert drop_language_tags(normalize_text(line)) == (
        "the conservative Law and Justice Party Prawo i Sprawiedliwość publicly declared")


def test_interview_speakers_wiki_links_and_footnote_marks():
    # wikinews-2019-062, -2020-272, -2020-239, -2020-223, -2020-280, -2019-008, -2019-003
    assert strip_residue("((WN)) What got you into cosplay modelling?") == "WN: What got you into cosplay modelling?"
    assert strip_residue("((WSS)) : Which past U.S. president(s) do you most admire and why?") == (
        "WSS: Which past U.S. president(s) do you most admire and why?")
    assert strip_residue("his podcast (((My Fellow Americans))).") == "his podcast (My Fellow Americans)."
    assert strip_residue("the {w|neuroplasticity|plasticity}} of the brain") == "the plasticity of the brain"
    assert strip_residue("Thomas Knapp, who founded the |Boston Tea Party; and") == (
        "Thomas Knapp, who founded the Boston Tea Party; and")
    assert strip_residue("They published a detailed map[3] of the distributions") == (
        "They published a detailed map of the distributions")
    assert strip_residue('"joyful girls starting out in life [who] have had life torn away"') == (
        '"joyful girls starting out in life [who] have had life torn away"')  # an editor's insertion stays


def test_photo_credits_swatches_and_notices_go_captions_stay():
    # wikinews-2019-043, -2019-044, -2019-094, -2020-239, -2019-134, -2020-269; the last line is made up
    assert strip_residue("Dakota, a deer. Image: Nicholas Moreau.") == "Dakota, a deer."
    assert strip_residue("Image: Nicholas Moreau.") == ""
    assert strip_residue("Lots of protestors. Image: John Lubbock (flickr).") == "Lots of protestors."
    assert strip_residue("Sirhan in 1969 (Image: CDCR)") == "Sirhan in 1969"
    assert strip_residue("Jo JorgensenImage: Jo Jorgensen for President.") == "Jo Jorgensen"
    assert strip_residue("██\u00a0Syrian Democratic Forces".replace("\u00a0", " ")) == "Syrian Democratic Forces"
    assert strip_residue("This article requires pre-publication review by an uninvolved reviewer (one not "
                         "substantially involved in writing the article).") == ""
    assert strip_residue("The image: a river at dawn, painted in 1870.") == "The image: a river at dawn, painted in 1870."


def test_wire_signatures_take_markers_and_corrections_go():
    for line in ("REUTER", "reuter", "Reuter...", "REUTERS", "Reuter4", "MORE", "more", "----"):
        assert strip_residue(line) == "", line
    assert strip_residue("Stocks rose 2.5 pct, traders said. REUTER") == "Stocks rose 2.5 pct, traders said."
    assert strip_residue("Oats 1.20 (1.15). Reuter...") == "Oats 1.20 (1.15)."
    assert strip_residue("The plant will close in May. -- corrects date of closing") == "The plant will close in May."
    assert strip_residue("- Corrects amount of notes in item appearing March 3.") == ""
    assert strip_residue("Net rose to 12 cts a share. (Corrects per share figure in item that ran March 9)") == (
        "Net rose to 12 cts a share.")
    assert strip_residue("he added.(Adds name of chairman in second paragraph).") == "he added."
    for real in ("The deal was confirmed, a spokesman told Reuters.", "More buyers came in after the report.",
                 "Corrections Corp of America said it won the contract.", "The plan (adds 5 pct to capacity) was "
                 "approved.", "Net profit 3.1 mln vs 2.4 mln - corrected figures follow"):
        assert strip_residue(real) == real, real


def test_a_wire_story_loses_its_signature_but_not_its_text():
    body = "Acme Corp said first quarter net rose.\n\nShr 12 cts vs 10 cts\n\nNet 1.2 mln vs 1.0 mln\n\nREUTER"
    assert clean_body(body) == "Acme Corp said first quarter net rose.\n\nShr 12 cts vs 10 cts\n\nNet 1.2 mln vs 1.0 mln"
