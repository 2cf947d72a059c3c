"""A non-editable install ships every subpackage, the bundled catalogues, schemas and data."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for rel in tracked.stdout.decode().split("\0"):
        if rel and (ROOT / rel).exists():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel, follow_symlinks=False)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src),
                           "-w", str(out)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return zipfile.ZipFile(next(out.glob("auditor-*.whl")))


def test_wheel_has_every_subpackage(wheel):
    names = set(wheel.namelist())
    for init in sorted((ROOT / "auditor").rglob("__init__.py")):
        assert init.relative_to(ROOT).as_posix() in names


def test_wheel_ships_catalogues_schemas_and_data_with_their_content(wheel):
    names = set(wheel.namelist())
    for path in sorted((ROOT / "auditor" / "data").iterdir()):
        member = f"auditor/data/{path.name}"
        assert member in names
        # bundled catalogues are links to rules/*.yaml: the wheel must hold the real text
        assert wheel.read(member) == path.resolve().read_bytes(), member
    assert {f"auditor/data/{p.name}" for p in (ROOT / "rules").glob("*.yaml")} <= names
