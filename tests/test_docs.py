"""The format reference in docs/ is generated from the schemas and must not go stale."""

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
