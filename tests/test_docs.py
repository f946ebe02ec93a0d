"""docs/ stays true to the code: the format reference is generated from the schemas, and
the architecture names only files and names that exist."""

from __future__ import annotations

import subprocess
import sys

from support import ROOT


def test_the_format_reference_tables_match_the_code():
    result = subprocess.run(
        [sys.executable, "scripts/format_tables.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_architecture_names_only_files_and_names_that_exist():
    """docs/architecture.md stays true to the code: every path it names exists, and every
    "`Name` in `path.py`" names a class or function defined in that file."""
    import re

    root = ROOT
    text = (root / "docs" / "architecture.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:studio|ui|docs|scripts|resources)/[\w/.*<>-]*)`", text))
    assert len(paths) > 20
    for path in paths:
        if "<" in path or "*" in path:  # a pattern, e.g. studio/layers/<group>.py
            assert (root / path.split("<")[0].split("*")[0]).exists(), path
        else:
            assert (root / path).exists(), f"docs/architecture.md names {path}, which is gone"
    pairs = re.findall(r"\(`(\w+)` in `([\w/]+\.py)`", text)
    assert len(pairs) >= 3
    for name, path in pairs:
        source = (root / path).read_text(encoding="utf-8")
        assert re.search(rf"^(class|def) {name}\b", source, re.M), f"{name} not in {path}"
