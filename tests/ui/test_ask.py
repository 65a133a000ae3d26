"""The Ask service: sections, BM25 ranking, the assistant client and its fallback."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from app.services.ask import (
    MAX_ANSWER_BYTES,
    AskService,
    AssistantClient,
    AssistantError,
    DocIndex,
    Section,
    answer_from_docs,
    split_sections,
    tokens,
)

ROOT = Path(__file__).resolve().parents[2]

DOC = """# Title

Intro text.

<!-- section: hidden -->

## Resume a download

Use `curl -C -` to continue.

```sh
# not a heading
curl -C - -o order.zip http://x/orders/1/images
```

### Missing images

Images still processing are listed in the report.
"""


def test_sections_split_at_headings_but_not_inside_code() -> None:
    sections = split_sections("docs/x.md", DOC)
    assert [s.title for s in sections] == ["Title", "Resume a download", "Missing images"]
    resume = sections[1]
    assert "# not a heading" in resume.text
    assert resume.anchor == "resume-a-download"
    assert all("<!--" not in s.text for s in sections)


def test_tokens_stem_and_drop_stop_words() -> None:
    assert tokens("How do I resume downloads?") == tokens("resuming download")
    assert "the" not in tokens("the images")


def test_ranking_prefers_the_section_about_the_question() -> None:
    index = DocIndex(split_sections("docs/x.md", DOC))
    hits = index.search("how do I resume a download?")
    assert hits[0].section.title == "Resume a download"
    assert index.search("images processing report")[0].section.title == "Missing images"
    assert index.search("zebra") == []


def test_project_docs_answer_the_page_questions() -> None:
    index = DocIndex.for_project(ROOT)
    resume = answer_from_docs("how do I resume a download?", index)
    assert resume.mode == "docs"
    assert "curl -C -" in resume.text
    missing = answer_from_docs("why are some images missing?", index)
    assert "_download_report.txt" in missing.text
    assert "credit" in answer_from_docs("what does dev mode cost?", index).text


def test_unknown_question_says_so() -> None:
    index = DocIndex.for_project(ROOT)
    answer = answer_from_docs("what is the capital of peru", index)
    assert answer.text.startswith("I could not find that")


def test_long_sections_are_clipped_at_a_paragraph() -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(20))
    other = [Section("README.md", f"Other {i}", f"other-{i}", "unrelated") for i in range(3)]
    index = DocIndex([Section("README.md", "Paragraphs", "paragraphs", text), *other])
    answer = answer_from_docs("paragraph", index)
    assert len(answer.text) < 2000
    assert answer.text.endswith("…")


def _client(handler: httpx.MockTransport) -> AssistantClient:
    http = httpx.AsyncClient(transport=handler, base_url="http://assistant.test")
    return AssistantClient(http, url="http://assistant.test/ask", api_key="chat-key")


async def test_assistant_gets_question_context_and_key() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"answer": "Use curl -C -."})

    client = _client(httpx.MockTransport(handle))
    context = [Section("docs/faq.md", "Resume", "resume", "x" * 5000)]
    assert await client.ask("resume?", context) == "Use curl -C -."
    sent = json.loads(seen[0].content)
    assert sent["question"] == "resume?"
    assert sent["context"][0]["title"] == "Resume"
    assert len(sent["context"][0]["text"]) == 2000
    assert seen[0].headers["authorization"] == "Bearer chat-key"


async def test_assistant_plain_text_answer() -> None:
    client = _client(httpx.MockTransport(lambda r: httpx.Response(200, text="Plain answer")))
    assert await client.ask("q", []) == "Plain answer"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, json={"answer": "no"}),
        httpx.Response(200, json={"text": "wrong field"}),
        httpx.Response(200, content=b"{not json", headers={"content-type": "application/json"}),
        httpx.Response(200, text="   "),
        httpx.Response(200, content=b"a" * (MAX_ANSWER_BYTES + 1)),
    ],
    ids=["5xx", "no answer field", "bad json", "empty", "too large"],
)
async def test_assistant_failures_raise(response: httpx.Response) -> None:
    client = _client(httpx.MockTransport(lambda r: response))
    with pytest.raises(AssistantError):
        await client.ask("q", [])


async def test_assistant_timeout_raises() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(AssistantError):
        await _client(httpx.MockTransport(handle)).ask("q", [])


async def test_service_falls_back_to_docs_when_the_assistant_fails() -> None:
    index = DocIndex.for_project(ROOT)
    failing = _client(httpx.MockTransport(lambda r: httpx.Response(503)))
    answer = await AskService(index, assistant=failing).answer("how do I resume a download?")
    assert answer.mode == "docs"
    assert answer.notice is not None
    assert "curl -C -" in answer.text


async def test_service_uses_the_assistant_when_it_answers() -> None:
    index = DocIndex.for_project(ROOT)
    working = _client(httpx.MockTransport(lambda r: httpx.Response(200, json={"answer": "Yes."})))
    answer = await AskService(index, assistant=working).answer("  resume   a download  ")
    assert answer.mode == "assistant"
    assert answer.text == "Yes."
    assert answer.sources
    assert answer.sources[0].section.source == "docs/faq.md"
