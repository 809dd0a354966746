"""The documentation works as written: its code runs and its links lead somewhere.

Every ```` ```python ```` block of ``README.md``, ``notebooks/README.md`` and ``docs/*.md``
carries one marker, an HTML comment on the line before it (invisible once rendered):

- ``<!-- run -->``: run it (a block of ``>>>`` lines runs as a doctest, its output compared);
- ``<!-- run: live -->``, ``<!-- run: browser -->``, ``<!-- run: slow -->``: run it in a test
  with that marker (it starts real servers, Chromium, or Dask workers);
- ``<!-- not run: reason -->``: leave it out, saying why (a fragment, or it needs a server
  of the reader's own).

A block with no marker fails :func:`test_every_python_block_is_marked`, so a new example
is either run or excused in writing. A block runs as a reader would run it: saved to a
file in a fresh temporary directory and run by a fresh Python (the checkout's ``simkit``
first on the path, matplotlib's non-interactive backend), with a timeout; a block that
leaves processes behind (Dask workers) has its whole process group killed at the end.

:func:`test_links` checks that every relative link of those pages names an existing file,
and an existing heading when it has an ``#anchor`` (GitHub's heading slugs).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    ROOT / "notebooks" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]

MARKER = re.compile(
    r"^<!--\s*(run(?::\s*(?P<mark>live|browser|slow))?|not run:(?P<reason>.*?))\s*-->$"
)
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)|!\[[^\]]*\]\((?P<image>[^)\s]+)\)")

# Seconds a block may take, by its marker: a live block plays real time.
TIMEOUTS = {None: 120.0, "slow": 180.0, "live": 240.0, "browser": 300.0}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page, with the marker on the line before it (if any)."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # "run", "not run" or None (no marker)
    mark: str | None = None  # "live", "browser", "slow" for a marked run
    reason: str = ""

    @property
    def name(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"

    @property
    def doctest(self) -> bool:
        return self.code.lstrip().startswith(">>>")


def blocks_of(path: Path, text: str | None = None) -> list[Block]:
    """Every fenced code block of the page at ``path`` (or of ``text``), in order."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, lang = opening["fence"], opening["lang"]
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = MARKER.match(lines[k].strip()) if k >= 0 else None
        if marker is None:
            kind, mark, reason = None, None, ""
        elif marker["reason"] is not None:
            kind, mark, reason = "not run", None, marker["reason"].strip()
        else:
            kind, mark, reason = "run", marker["mark"], ""
        found.append(
            Block(path, i + 1, lang, "\n".join(lines[i + 1 : j]) + "\n", kind, mark, reason)
        )
        i = j + 1
    return found


def python_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks_of(page) if b.lang == "python"]


def unmarked(blocks: list[Block]) -> list[str]:
    """What is wrong with the markers of ``blocks``: one line per python block."""
    wrong = []
    for b in blocks:
        if b.lang != "python":
            continue
        if b.marker is None:
            wrong.append(f"{b.name}: no <!-- run --> or <!-- not run: reason --> before it")
        elif b.marker == "not run" and not b.reason:
            wrong.append(f"{b.name}: <!-- not run: ... --> gives no reason")
    return wrong


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(text: str) -> set[str]:
    """The anchors of a page's headings (outside code blocks), duplicates numbered."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in prose_lines(text):
        heading = re.match(r"^#{1,6}\s+(.*)$", line)
        if heading:
            base = slug(heading[1])
            n = seen.get(base, 0)
            anchors.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
    return anchors


def prose_lines(text: str) -> list[str]:
    """The lines of a page outside fenced code blocks."""
    out, fence = [], None
    for line in text.splitlines():
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening["fence"]
        elif fence is not None and line.startswith(fence):
            fence = None
        elif fence is None:
            out.append(line)
    return out


def broken_links(path: Path, text: str | None = None) -> list[str]:
    """Every relative link of the page at ``path`` that leads nowhere, with why."""
    text = path.read_text(encoding="utf-8") if text is None else text
    broken = []
    for line in prose_lines(text):
        line = re.sub(r"`[^`]*`", "", line)  # code spans hold no links
        for match in LINK.finditer(line):
            target = match["target"] or match["image"]
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                broken.append(f"{path.name}: link {target!r}: no file {dest}")
                continue
            if (
                anchor
                and dest.suffix == ".md"
                and anchor not in anchors_of(dest.read_text(encoding="utf-8"))
            ):
                broken.append(f"{path.name}: link {target!r}: no heading #{anchor} in {dest.name}")
    return broken


def marks(block: Block) -> list[pytest.MarkDecorator]:
    return [getattr(pytest.mark, block.mark)] if block.mark else []


RUNNABLE = [b for b in python_blocks() if b.marker == "run"]


def test_every_python_block_is_marked() -> None:
    assert unmarked(python_blocks()) == []


def test_the_docs_have_runnable_blocks() -> None:
    """The README's quick start is among the blocks run (the parser did find them)."""
    readme = [b for b in RUNNABLE if b.path.name == "README.md" and b.path.parent == ROOT]
    assert len(readme) >= 2, readme


@pytest.mark.parametrize("block", [pytest.param(b, id=b.name, marks=marks(b)) for b in RUNNABLE])
def test_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    if block.doctest:
        script = tmp_path / "snippet.txt"
        command = [sys.executable, "-m", "doctest", "-o", "NORMALIZE_WHITESPACE", str(script)]
    else:
        script = tmp_path / "snippet.py"
        command = [sys.executable, str(script)]
    script.write_text(block.code, encoding="utf-8")
    env = dict(
        os.environ,
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=TIMEOUTS[block.mark])
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{block.name} ran over {TIMEOUTS[block.mark]} s:\n{output[-3000:]}")
    finally:
        # whatever the block left running (Dask workers) goes with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"{block.name} failed as written:\n{output[-3000:]}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links(page: Path) -> None:
    assert broken_links(page) == []


# The checkers themselves, on pages made up here, so they are shown able to fail.


def test_checker_finds_an_unmarked_block_and_a_missing_reason(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    text = (
        "```python\nprint(1)\n```\n\n<!-- not run:   -->\n```python\nx\n```\n\n"
        "<!-- run: live -->\n\n```python\nprint(2)\n```\n```sh\nls\n```\n"
    )
    blocks = blocks_of(page, text)
    assert [(b.lang, b.marker, b.mark) for b in blocks] == [
        ("python", None, None),
        ("python", "not run", None),
        ("python", "run", "live"),
        ("sh", None, None),
    ]
    assert len(unmarked(blocks)) == 2


def test_checker_finds_broken_links_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Top\n\n## The post-mortem's `socket` hang up\n")
    page = tmp_path / "page.md"
    text = (
        "[ok](other.md) [ok](other.md#the-post-mortems-socket-hang-up) [web](https://x.y/z)\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere) `[code](nowhere.md)`\n"
        "```\n[in a block](nowhere.md)\n```\n"
    )
    problems = broken_links(page, text)
    assert len(problems) == 2
    assert "missing.md" in problems[0] and "#nowhere" in problems[1]
