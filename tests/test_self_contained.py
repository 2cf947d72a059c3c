"""A clone is all it takes: no tracked file names a path outside the repository, and the public
captures the tests read are in the repository exactly as their README lists them."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "fixtures" / "pcaps" / "public"

# Paths that exist only on some machine: the reference folder beside the project, the build
# machine's work and home directories, and fixed names under /tmp (which collide between users and
# runs; make temporary directories with mktemp or pytest's tmp_path). /var/tmp/pilot-recorder, the
# recorder's overridable cache (PILOT_WORK), is a directory the script creates itself, not one it
# expects to find, so it is not matched: `/tmp/` counts only where a path starts.
OUTSIDE = re.compile(r"""
      \.\./shared\b
    | (?<![\w./-])/(?:work|root)/
    | (?<![\w./-])/(?:home|Users)/[A-Za-z0-9_.-]+
    | (?<![\w./-])/(?:tmp)/[\w.-]
""", re.VERBOSE)
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked_text_files() -> list[Path]:
    """Every file git tracks that is text (no NUL byte in it)."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    files = [ROOT / n for n in names if n]
    return [p for p in files if p.is_file() and b"\0" not in p.read_bytes()]


def test_no_tracked_file_names_a_path_outside_the_repo():
    hits = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if match := OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)}")
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)


def test_no_markdown_link_leaves_the_repo():
    hits = []
    for path in tracked_text_files():
        if path.suffix != ".md":
            continue
        for target in MARKDOWN_LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:|#", target):  # URLs and anchors
                continue
            resolved = (path.parent / target.split("#")[0]).resolve()
            if not resolved.is_relative_to(ROOT):
                hits.append(f"{path.relative_to(ROOT)}: {target}")
    assert not hits, "links outside the repository:\n" + "\n".join(hits)


def public_readme_rows() -> list[tuple[str, int, str]]:
    """(file, size, sha256) of each capture the public README's provenance table lists."""
    rows = []
    for line in (PUBLIC / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 8 and cells[0].startswith("`"):
            rows.append((cells[0].strip("`"), int(cells[5]), cells[6].strip("`")))
    return rows


def test_public_readme_lists_every_public_capture_once():
    listed = [name for name, _, _ in public_readme_rows()]
    present = sorted(p.name for p in PUBLIC.iterdir() if p.suffix in (".pcap", ".pcapng"))
    assert sorted(listed) == present and len(present) == 14


@pytest.mark.parametrize("row", public_readme_rows(), ids=lambda row: row[0])
def test_public_capture_has_the_listed_size_and_sha256(row):
    name, size, sha256 = row
    data = (PUBLIC / name).read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha256)
