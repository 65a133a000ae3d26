"""Ask answers people's questions: plain-language questions, and the passage each must find.

Each question is asked the way a photographer or an integrator would ask it, not in the docs'
words; the answer must be the FAQ section written for it, and hold the words that answer it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.ask import DocIndex, answer_from_docs

ROOT = Path(__file__).resolve().parents[2]

QUESTIONS = [
    ("How do I get the full resolution photos?", "How do I get the full-quality photos?",
     "Choose **Full quality**"),
    ("Can I send my client a link?", "Can I send my client a link?", "DOWNLOAD_LINK_TTL"),
    ("Why is one photo missing from my ZIP?", "Why is a photo missing from my ZIP?",
     "_download_report.txt"),
    ("What does full quality cost?", "What does full quality cost?", "one Autoenhance credit"),
    ("Why is my zip called preview?", 'Why is my ZIP called "(preview)"?', "about 1024 px"),
    ("How do I download just a few of the pictures?",
     "How do I download only a few of the photos?", "Download 3 of 12"),
    ("How do I upload a whole folder of photos?", "How do I upload a folder of photos?",
     "--order-id <id> --wait"),
    ("How do I find an order by its name?", "How do I find an order?", "Find an order by name"),
    ("Can I see a photo bigger?", "How do I see a photo larger?", "Download this photo"),
    ("My download broke, how do I continue it?", "How do I resume a broken download?",
     "run the same `setup_test_order.py` command again"),
    ("How do I try it without an Autoenhance account?",
     "How do I try it without an Autoenhance account?", "sandbox mode"),
    ("The page asks me for a key", "The page asks for a key", "SERVICE_API_KEY"),
    ("What does an error look like?", "What does an error look like?", "detail.message"),
    ("How do I build a huge order in the background?", "How do I use jobs for huge orders?",
     "POST http://127.0.0.1:8000/orders/<order_id>/jobs"),
]  # fmt: skip


@pytest.fixture(scope="module")
def index() -> DocIndex:
    return DocIndex.for_project(ROOT)


@pytest.mark.parametrize(("question", "title", "passage"), QUESTIONS)
def test_a_plain_question_finds_the_answer_written_for_it(
    index: DocIndex, question: str, title: str, passage: str
) -> None:
    answer = answer_from_docs(question, index)
    best = answer.sources[0].section
    assert (best.source, best.title) == ("docs/faq.md", title)
    assert passage in answer.text


def test_there_are_enough_questions() -> None:
    assert len(QUESTIONS) >= 10
