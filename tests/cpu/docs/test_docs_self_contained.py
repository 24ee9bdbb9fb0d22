"""The project stands alone: no file points at references outside the repository, and every link
into docs/methods.md names a section that exists there."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SKIP_DIRS = {".git", ".venv", "outputs", ".hypothesis", ".pytest_cache", "__pycache__", "gradus.egg-info"}
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".sh", ".json"}
# Written in pieces so this file does not match itself.
OUTSIDE = re.compile("|".join([r"\.\./" + "shared", "shared" + r"/reference", "/work/" + "shared",
                               "methods" + r"\.md section", r"\bstack" + r"\.md\b"]))
METHODS_LINK = re.compile(r"methods\.md#([A-Za-z0-9_-]+)")


def _project_files() -> list[Path]:
    files = []
    for path in REPO.rglob("*"):
        rel = path.relative_to(REPO)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name == "Makefile"):
            files.append(path)
    return files


def _slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces -> '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_no_file_points_outside_the_repository():
    hits = []
    for path in _project_files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:120]}")
    assert not hits, "pointers outside the repository (write the fact into docs/ instead):\n" + "\n".join(hits)


def test_links_into_methods_name_existing_sections():
    methods = REPO / "docs" / "methods.md"
    anchors = {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", methods.read_text(), re.M)}
    links = [(path, anchor) for path in _project_files() for anchor in METHODS_LINK.findall(path.read_text(errors="replace"))]
    assert links, "nothing links into docs/methods.md"
    broken = [f"{path.relative_to(REPO)}: #{anchor}" for path, anchor in links if anchor not in anchors]
    assert not broken, f"links to headings docs/methods.md does not have (it has {sorted(anchors)}):\n" + "\n".join(broken)
