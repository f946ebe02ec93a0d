"""Errors a user can cause, each carrying one sentence that names the file, node or field."""

from __future__ import annotations

from dataclasses import dataclass


class StudioError(Exception):
    """An error with a message meant for the person using the studio, not a traceback."""


class ProjectError(StudioError):
    """A project file that cannot be read, or a document that breaks the format."""


class ShapeError(StudioError):
    """A layer that cannot accept what flows into it; the message says what to change."""


class ExportError(StudioError):
    """A model that cannot be exported or whose export does not match torch."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document, attached to the node (and field) that causes it."""

    message: str
    node: str | None = None
    field: str | None = None

    def to_dict(self) -> dict:
        return {"node": self.node, "field": self.field, "message": self.message}
