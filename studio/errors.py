"""Errors a user can cause, each carrying one sentence that names the file, node or field."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

# The most characters of a person's input a message repeats: enough to recognise a value,
# never a 200 KB id flooding the terminal.
ECHO_LIMIT = 60


class StudioError(Exception):
    """An error with a message meant for the person using the studio, not a traceback."""


class ProjectError(StudioError):
    """A project file that cannot be read, or a document that breaks the format."""


class ShapeError(StudioError):
    """A layer that cannot accept what flows into it; the message says what to change."""


class DataError(StudioError):
    """Data that cannot be used; the message names the file, folder or column."""


class TrainingError(StudioError):
    """A training setup that cannot work; the message names the setting or node."""


class ExportError(StudioError):
    """A model that cannot be exported or whose export does not match torch."""


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """Text from the user as a message repeats it: characters that do not print (newlines,
    lone surrogates) escaped, cut to `limit` characters with an ellipsis."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(value: Any, limit: int = ECHO_LIMIT) -> str:
    """A value from the user quoted in a message, cut to `limit` characters.

    Text keeps Python's quotes ('conv1'); everything else is spelled as in the JSON file
    (null, true, NaN, Infinity, [1, 2]), so the message shows what the person wrote.
    """
    if isinstance(value, str):
        text = repr(value)
        cut = clip(text, limit)
        return cut if cut == text else cut + text[0]  # 'aaaa…'
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        try:
            return f"a number of {len(str(abs(value))):,} digits"
        except ValueError:  # beyond sys.get_int_max_str_digits()
            return f"a number of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    try:
        text = json.dumps(value, allow_nan=True, default=repr)
    except (RecursionError, ValueError):
        text = f"a {type(value).__name__}"
    return clip(text, limit)


def kind_of(value: Any) -> str:
    """What a JSON value is, in the words of the file ("a list", "null"), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document, attached to the node (and field) that causes it."""

    message: str
    node: str | None = None
    field: str | None = None

    def to_dict(self) -> dict:
        return {"node": self.node, "field": self.field, "message": self.message}


NOTICES = "studio.notices"


def notice(sentence: str) -> None:
    """Tell the person something went wrong and was handled (an index rebuilt, an older
    checkpoint used): one sentence, shown by the CLI on stderr and by the window."""
    import logging

    logging.getLogger(NOTICES).warning(sentence)
