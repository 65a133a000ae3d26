"""Answers to questions about the service, from its own documentation.

By default nothing leaves the machine: `DocIndex` splits README.md and `docs/*.md` into sections
at their headings and ranks them against the question with Okapi BM25; the answer is the best
section, with the next ones as "see also". BM25 is written here (about sixty lines) rather than
taken from a library because the corpus is a few hundred sections and the well-known package
(`rank-bm25`) would pull in NumPy for it.

When `CHAT_API_URL` is set, `AssistantClient` forwards the question, with the best sections as
context, to that endpoint from the server (the page never calls a third party), with a timeout
and a cap on the answer's size. If the assistant fails, the answer falls back to the docs.

Exceptions::

    AssistantError        the assistant endpoint failed, timed out or answered nonsense
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from app.core.config import Settings
from app.core.identity import USER_AGENT

logger = logging.getLogger("app.ask")

# Longest question accepted, in characters (a question, not a document).
MAX_QUESTION_CHARS = 500
# Longest assistant answer read, in bytes; the rest is refused rather than truncated silently.
MAX_ANSWER_BYTES = 64 * 1024
# Characters of one section sent to the assistant as context, and how many sections.
CONTEXT_CHARS = 2000
CONTEXT_SECTIONS = 3
# Characters of a docs section shown as the answer before it is cut at a paragraph.
ANSWER_CHARS = 1800
# BM25 parameters (the usual values) and the score under which no section is "an answer".
BM25_K1 = 1.5
BM25_B = 0.75
MIN_SCORE = 1.0

_TOKEN = re.compile(r"[a-z0-9]+")
_HEADING = re.compile(r"^(#{1,4})\s+(.+?)\s*#*\s*$")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i if in is it my of on or so that the "
    "this to what when where which who why will with you your me we our there their its not "
    "get".split()
)


class AssistantError(Exception):
    """The assistant endpoint did not give a usable answer."""


@dataclass(frozen=True, slots=True)
class Section:
    """One heading of one document and the text under it (Markdown)."""

    source: str
    title: str
    anchor: str
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    section: Section
    score: float


@dataclass(frozen=True, slots=True)
class Answer:
    """What the page shows: Markdown text, where it came from, and who wrote it."""

    text: str
    mode: Literal["docs", "assistant"]
    sources: list[Hit] = field(default_factory=list)
    notice: str | None = None


# People ask in their own words; the docs use the service's. Each stem on the left counts as
# the one on the right, in questions and docs alike ("pictures" finds "images", "full
# resolution" finds "full quality").
_SYNONYMS = {
    "imag": "photo",
    "pictur": "photo",
    "pic": "photo",
    "pics": "photo",
    "resolution": "quality",
    "res": "quality",
    "bigger": "larger",
    "continu": "resum",
    "brok": "broken",
    "archiv": "zip",
}


def tokens(text: str) -> list[str]:
    """Lower-case word stems without stop words, people's words folded into the docs' ones
    ("Resuming downloads" → resum, download; "pictures" → photo)."""
    stems = (_stem(word) for word in _TOKEN.findall(text.lower()) if word not in _STOPWORDS)
    return [_SYNONYMS.get(stem, stem) for stem in stems]


def _stem(word: str) -> str:
    # A light suffix strip is enough to match "images"/"image", "resume"/"resuming".
    for suffix in ("ing", "ed", "es", "s", "e"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def slug(title: str) -> str:
    """The GitHub-style anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).strip().replace(" ", "-")


def split_sections(source: str, markdown: str) -> list[Section]:
    """Cut a Markdown document at its headings (levels 1-4), ignoring `#` inside code fences."""
    sections: list[Section] = []
    title, fenced = source, False
    lines: list[str] = []

    def flush() -> None:
        text = "\n".join(lines).strip()
        if text:
            sections.append(Section(source=source, title=title, anchor=slug(title), text=text))

    for line in _COMMENT.sub("", markdown).splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading:
            flush()
            title, lines = heading.group(2).strip("`"), []
        else:
            lines.append(line)
    flush()
    return sections


class DocIndex:
    """An Okapi BM25 index over documentation sections (titles count twice)."""

    def __init__(self, sections: Sequence[Section]) -> None:
        self.sections = list(sections)
        self._terms = [Counter(tokens(s.title) * 2 + tokens(s.text)) for s in self.sections]
        self._lengths = [sum(terms.values()) for terms in self._terms]
        self._average = sum(self._lengths) / len(self._lengths) if self._lengths else 0.0
        frequency: Counter[str] = Counter()
        for terms in self._terms:
            frequency.update(terms.keys())
        count = len(self.sections)
        self._idf = {
            term: math.log(1 + (count - df + 0.5) / (df + 0.5)) for term, df in frequency.items()
        }

    @classmethod
    def from_files(cls, paths: Iterable[Path], *, root: Path) -> DocIndex:
        """Index the given Markdown files; missing or unreadable files are skipped."""
        sections: list[Section] = []
        for path in paths:
            try:
                markdown = path.read_text(encoding="utf-8")
            except OSError:
                logger.warning("docs file %s could not be read; left out of Ask", path.name)
                continue
            sections.extend(split_sections(path.relative_to(root).as_posix(), markdown))
        return cls(sections)

    @classmethod
    def for_project(cls, root: Path) -> DocIndex:
        """README.md and every `docs/*.md` under `root`."""
        paths = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
        return cls.from_files(paths, root=root)

    def search(self, question: str, *, limit: int = 3) -> list[Hit]:
        """The best `limit` sections for `question`, best first (only those scoring above 0)."""
        query = set(tokens(question))
        hits = []
        for section, terms, length in zip(self.sections, self._terms, self._lengths, strict=True):
            score = 0.0
            for term in query & terms.keys():
                tf = terms[term]
                norm = BM25_K1 * (1 - BM25_B + BM25_B * length / (self._average or 1))
                score += self._idf[term] * tf * (BM25_K1 + 1) / (tf + norm)
            if score > 0:
                hits.append(Hit(section, round(score, 3)))
        hits.sort(key=lambda hit: hit.score, reverse=True)
        return hits[:limit]


def answer_from_docs(question: str, index: DocIndex) -> Answer:
    """The best-matching docs section as the answer, or a pointer to what the docs cover."""
    hits = index.search(question)
    if not hits or hits[0].score < MIN_SCORE:
        return Answer(
            text="I could not find that in this service's documentation. Try asking about "
            "full-quality photos, a photo missing from a ZIP, finding an order, resuming a "
            "download, uploading a folder, or jobs — or read the API reference at /docs.",
            mode="docs",
            sources=hits,
        )
    best = hits[0].section
    return Answer(text=f"## {best.title}\n\n{_clip(best.text)}", mode="docs", sources=hits)


def _clip(text: str) -> str:
    if len(text) <= ANSWER_CHARS:
        return text
    cut = text.rfind("\n\n", 0, ANSWER_CHARS)
    return text[: cut if cut > 0 else ANSWER_CHARS].rstrip() + "\n\n…"


class AssistantClient:
    """Forwards questions to the assistant endpoint at `url`.

    The request is `POST url` with JSON `{"question": str, "context": [{"title", "source",
    "text"}]}` (and `Authorization: Bearer <CHAT_API_KEY>` when a key is set); the answer is
    JSON `{"answer": str}` or plain text.
    """

    def __init__(self, http: httpx.AsyncClient, *, url: str, api_key: str | None) -> None:
        self._http = http
        self._url = url
        self._api_key = api_key

    async def ask(self, question: str, context: Sequence[Section]) -> str:
        """The assistant's answer as text.

        Raises:
            AssistantError: timeout, connection failure, non-2xx status, an answer over
                MAX_ANSWER_BYTES, or a body without an answer.
        """
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        payload = {
            "question": question,
            "context": [
                {"title": s.title, "source": s.source, "text": s.text[:CONTEXT_CHARS]}
                for s in context[:CONTEXT_SECTIONS]
            ],
        }
        try:
            async with self._http.stream("POST", self._url, json=payload, headers=headers) as resp:
                if resp.status_code >= 300:
                    raise AssistantError(f"assistant answered HTTP {resp.status_code}")
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise AssistantError("assistant answer is too large")
                content_type = resp.headers.get("content-type", "")
        except httpx.HTTPError as exc:
            raise AssistantError(f"assistant unreachable: {type(exc).__name__}") from exc
        return _answer_text(bytes(body), content_type)


def _answer_text(body: bytes, content_type: str) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    if "json" in content_type:
        try:
            data = json.loads(text)
        except ValueError:
            raise AssistantError("assistant answered invalid JSON") from None
        answer = data.get("answer") if isinstance(data, dict) else None
        if not isinstance(answer, str):
            raise AssistantError("assistant JSON has no 'answer' string")
        text = answer.strip()
    if not text:
        raise AssistantError("assistant answered nothing")
    return text


class AskService:
    """Answers questions: from the docs, or through the assistant when one is configured."""

    def __init__(self, index: DocIndex, *, assistant: AssistantClient | None = None) -> None:
        self.index = index
        self.assistant = assistant

    async def answer(self, question: str) -> Answer:
        """Answer `question` (already length-checked by the caller). Never raises for an
        assistant failure: it falls back to the docs and says so in `notice`."""
        question = " ".join(question.split())
        if self.assistant is None:
            return answer_from_docs(question, self.index)
        hits = self.index.search(question, limit=CONTEXT_SECTIONS)
        try:
            text = await self.assistant.ask(question, [hit.section for hit in hits])
        except AssistantError as exc:
            logger.warning("assistant failed (%s); answering from the docs", exc)
            fallback = answer_from_docs(question, self.index)
            fallback_notice = "The assistant is unavailable; this answer is from the docs."
            return Answer(fallback.text, "docs", fallback.sources, notice=fallback_notice)
        return Answer(text=text, mode="assistant", sources=hits)


# The assistant's answer must start within this many seconds to connect.
ASSISTANT_CONNECT_TIMEOUT = 5.0


def ask_service(settings: Settings, resources: AsyncExitStack, *, root: Path) -> AskService:
    """The Ask service over the docs under `root`; with `CHAT_API_URL`, its one HTTP client to
    the assistant, closed by `resources`."""
    index = DocIndex.for_project(root)
    if not settings.chat_api_url:
        return AskService(index)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.chat_timeout, connect=ASSISTANT_CONNECT_TIMEOUT),
        limits=httpx.Limits(max_connections=8),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )
    resources.push_async_callback(http.aclose)
    key = settings.chat_api_key
    assistant = AssistantClient(
        http,
        url=settings.chat_api_url,
        api_key=key.get_secret_value() if key is not None else None,
    )
    return AskService(index, assistant=assistant)
