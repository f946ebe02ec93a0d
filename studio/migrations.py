"""Old project files keep opening: each migration lifts raw data one format version.

MIGRATIONS[n] takes a version-n dict and returns a version-(n+1) dict. When the format
changes, bump FORMAT_VERSION in document.py and add the step here (Orange's
`migrate_settings` is the model).
"""

from __future__ import annotations

from collections.abc import Callable

from studio.document import FORMAT_VERSION
from studio.errors import ProjectError, shown

MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


def migrate(raw: dict, source: str = "The project") -> dict:
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ProjectError(
            f"{source} has no valid 'version' field (a whole number); got {shown(version)}."
        )
    if version > FORMAT_VERSION:
        raise ProjectError(
            f"{source} is format version {shown(version)}, made by a newer studio; this one reads up to "
            f"version {FORMAT_VERSION}."
        )
    while version < FORMAT_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ProjectError(
                f"{source} is format version {version}, which this studio can no longer read."
            )
        raw = step(raw)
        version += 1
        raw["version"] = version
    return raw
