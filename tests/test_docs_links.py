"""The documentation lives in the repository and its links hold.

The rule (also stated in the README's "Documentation" section):

- a relative link must name a file or folder of this repository (never outside it), and a
  ``#fragment`` into a Markdown file must name one of its headings;
- a link that leaves the repository may only go to a well-known public reference: the
  standards bodies listed in ``PUBLIC_REFERENCES`` (HL7 for FHIR and SMART, LOINC, the RFC
  editor and IETF). Nothing else: no internal specifications, no other repositories, no
  vendor pages that may move or vanish;
- the same holds for bare URLs in the text. URLs inside code (backticks, code blocks) are
  examples and identifiers, such as FHIR canonical URLs, and are not links.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .conftest import ROOT

PUBLIC_REFERENCES = {
    "hl7.org",
    "www.hl7.org",
    "build.fhir.org",
    "loinc.org",
    "www.rfc-editor.org",
    "datatracker.ietf.org",
}
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
_BARE = re.compile(r"(?:https?|ftp)://[^\s)>\]]+")


def _prose(text: str) -> str:
    return _CODE.sub("", _FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M)}


def _links(path: Path) -> list[str]:
    prose = _prose(path.read_text())
    return [*_LINK.findall(prose), *_REFERENCE.findall(prose)]


def test_there_are_docs_to_check():
    names = {page.name for page in PAGES}
    expected = {"clinical-rules.md", "api.md", "fhir-smart.md", "deployment.md", "architecture.md"}
    assert expected <= names
    readme = (ROOT / "README.md").read_text()
    for name in expected:
        assert f"](docs/{name})" in readme, f"the README's map of the docs misses {name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_or_is_a_public_reference(page: Path):
    problems = []
    for target in _links(page):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:
            if parts.scheme not in ("http", "https") or parts.hostname not in PUBLIC_REFERENCES:
                problems.append(f"{target}: leaves the repository")
            continue
        if parts.path:
            resolved = (page.parent / parts.path).resolve()
            if not resolved.is_relative_to(ROOT.resolve()):
                problems.append(f"{target}: outside the repository")
                continue
            if not resolved.exists():
                problems.append(f"{target}: no such file")
                continue
        else:
            resolved = page
        if parts.fragment and resolved.suffix == ".md" and parts.fragment not in _anchors(resolved):
            problems.append(f"{target}: no heading #{parts.fragment}")
    assert not problems, f"{page.name}: " + "; ".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_bare_url_leaves_for_elsewhere(page: Path):
    prose = _LINK.sub("", _prose(page.read_text()))
    outside = [
        url for url in _BARE.findall(prose) if urlsplit(url).hostname not in PUBLIC_REFERENCES
    ]
    assert not outside, f"{page.name} names {outside}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_pointer_to_internal_specifications(page: Path):
    text = page.read_text()
    assert "shared/docs" not in text and "/work/" not in text, page.name


def test_the_checker_catches_what_it_should(tmp_path: Path):
    """The rule itself, on a page made to break it."""
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n[ok](#title) [gone](missing.md) [out](../../etc/passwd)\n"
        "[spec](https://example.com/spec) [fhir](https://hl7.org/fhir/R4/)\n"
        "`https://kap-outcomes.dev/fhir/sid/external-id` is an identifier\n"
    )
    targets = _links(page)
    assert targets == [
        "#title",
        "missing.md",
        "../../etc/passwd",
        "https://example.com/spec",
        "https://hl7.org/fhir/R4/",
    ]
    assert "title" in _anchors(page)
    assert _slug("2. Scoring") == "2-scoring"
    assert _slug("`caseload.py`") == "caseloadpy"
