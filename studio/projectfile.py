"""Reading and writing project files: JSON on disk, migrated, validated, saved atomically."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from studio.document import Project
from studio.errors import ProjectError, clip, kind_of, shown
from studio.migrations import migrate

# A project is a handful of levels deep; far deeper nesting is a damaged file, and would
# exhaust Python's recursion wherever the data is copied, compared or saved.
MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def read_raw(path: str | os.PathLike) -> dict:
    """The file's JSON as plain data, or a ProjectError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError(f"Project file '{path}' does not exist.") from None
    except IsADirectoryError:
        raise ProjectError(f"'{path}' is a folder, not a project file.") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "it is not UTF-8 text"
        raise ProjectError(f"Cannot read project file '{path}': {reason}.") from None
    source = f"Project file '{path}'"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProjectError(
            f"{source} is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})."
        ) from None
    except RecursionError:
        raise ProjectError(
            f"{source} nests lists or objects too deeply to read (a project needs fewer than "
            f"{MAX_DEPTH} levels)."
        ) from None
    except ValueError:
        # Python parses no integer of more than sys.get_int_max_str_digits() digits.
        raise ProjectError(
            f"{source} holds a number of more than {sys.get_int_max_str_digits():,} digits, "
            "longer than any field takes."
        ) from None
    if not isinstance(raw, dict):
        raise ProjectError(f"{source} must hold a JSON object, not {kind_of(raw)}.")
    check_plain(raw, source)
    return raw


def check_plain(value: Any, source: str, path: str = "") -> None:
    """Refuse data that would break later, not in a schema's check: nesting deeper than
    MAX_DEPTH, and text that is not valid Unicode (a lone surrogate such as "\\ud800" from
    a JSON escape, which can be neither printed nor saved as UTF-8).

    Raises ProjectError naming `source` and the field; walks without recursion, and
    spells a field's path only for the message.
    """
    stack: list[tuple[Any, int, tuple | None]] = [(value, 0, None)]
    while stack:
        item, depth, trail = stack.pop()
        if depth > MAX_DEPTH:
            raise ProjectError(
                f"{source}: field '{_dotted(path, trail)}' nests lists or objects more than "
                f"{MAX_DEPTH} levels deep."
            )
        if isinstance(item, str):
            _check_text(item, path, trail, source)
        elif isinstance(item, dict):
            for key, sub in item.items():
                inner = (key, trail)
                _check_text(key, path, inner, source)
                stack.append((sub, depth + 1, inner))
        elif isinstance(item, list):
            stack.extend((sub, depth + 1, (i, trail)) for i, sub in enumerate(item))


def _dotted(path: str, trail: tuple | None) -> str:
    """'network.nodes[2].name' from a trail of (key, parent trail) links."""
    keys = []
    while trail is not None:
        key, trail = trail
        keys.append(f"[{key}]" if isinstance(key, int) else f".{clip(str(key), 40)}")
    return clip((path + "".join(reversed(keys))).lstrip("."), 120)


def _check_text(text: str, path: str, trail: tuple | None, source: str) -> None:
    bad = _SURROGATE.search(text)
    if bad:
        where = _dotted(path, trail)
        field = f"field '{where}'" if where else "the value"
        raise ProjectError(
            f"{source}: {field} holds {repr(bad.group())[1:-1]}, a lone surrogate that is not "
            "valid Unicode text; remove it or write the character it was meant to be."
        )


def load_project(path: str | os.PathLike, overrides: list[str] | None = None) -> Project:
    """Read, migrate, override (`dotted.path=value`) and validate a project file."""
    raw = migrate(read_raw(path), f"Project file '{path}'")
    for item in overrides or []:
        apply_override(raw, item)
    try:
        return Project.from_dict(raw)
    except ProjectError as err:
        raise ProjectError(f"{Path(path).name}: {err}") from None


def save_project(project: Project, path: str | os.PathLike) -> None:
    """Write atomically: a crash mid-save leaves the old file whole (write, fsync, rename)."""
    path = Path(path)
    text = to_json(project.to_dict()) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename is still atomic
    finally:
        os.close(dir_fd)


def to_json(value: Any, indent: int = 0) -> str:
    """JSON that reads well: small objects and lists of plain values stay on one line."""
    flat = json.dumps(value, ensure_ascii=False)
    if len(flat) + indent <= 96 and (not isinstance(value, (dict, list)) or _shallow(value)):
        return flat
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, dict):
        items = [
            f"{inner}{json.dumps(k, ensure_ascii=False)}: {to_json(v, indent + 2).lstrip()}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}" if items else "{}"
    if isinstance(value, list):
        items = [inner + to_json(v, indent + 2).lstrip() for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]" if items else "[]"
    return flat


def _shallow(value: dict | list) -> bool:
    children = value.values() if isinstance(value, dict) else value
    return all(
        not isinstance(c, (dict, list))
        or (isinstance(c, list) and not any(isinstance(x, (dict, list)) for x in c))
        for c in children
    )


def parse_value(text: str) -> Any:
    """`--set` values: JSON when they parse (5, 0.1, true, [1,8,8], "x"), else the plain string.

    Text Python's parser cannot take (a 5,000-digit number, lists nested 1,000 deep) stays
    text too, so the field's own check refuses it in a sentence.
    """
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return text


def apply_override(raw: dict, item: str) -> None:
    """Apply `dotted.path=value` to raw project data.

    Lists of nodes are addressed by node id (network.nodes.fc1.params.out_features=32),
    other lists by index.
    """
    if "=" not in item:
        raise ProjectError(f"--set {shown(item)} needs the form dotted.path=value.")
    path, _, text = item.partition("=")
    keys = [k for k in path.strip().split(".") if k]
    if not keys:
        raise ProjectError(f"--set {shown(item)} names no field.")
    target: Any = raw
    for depth, key in enumerate(keys[:-1]):
        target = _step(target, key, ".".join(keys[: depth + 1]), item)
    last = keys[-1]
    value = parse_value(text)
    check_plain(value, f"--set {shown(item)}", ".".join(keys))
    if isinstance(target, dict):
        target[last] = value
    elif isinstance(target, list):
        target[_index(target, last, path, item)] = value
    else:
        raise ProjectError(
            f"--set {shown(item)}: '{clip('.'.join(keys[:-1]))}' is a value, not a section."
        )


def _step(target: Any, key: str, so_far: str, item: str) -> Any:
    if isinstance(target, dict):
        if key not in target:
            # The data and training sections are open-ended; new subsections may be created.
            if so_far.split(".")[0] in ("data", "training") and "." in so_far:
                target[key] = {}
            else:
                raise ProjectError(
                    f"--set {shown(item)}: the project has no field '{clip(so_far)}'."
                )
        return target[key]
    if isinstance(target, list):
        return target[_index(target, key, so_far, item)]
    raise ProjectError(f"--set {shown(item)}: '{clip(so_far)}' is a value, not a section.")


def _index(items: list, key: str, so_far: str, item: str) -> int:
    for i, entry in enumerate(items):
        if isinstance(entry, dict) and entry.get("id") == key:
            return i
    # ASCII digits only, and few: int() refuses 5,000 digits and reads "²" as no number.
    if re.fullmatch(r"-?[0-9]{1,9}", key) and -len(items) <= int(key) < len(items):
        return int(key)
    raise ProjectError(
        f"--set {shown(item)}: there is no node or entry '{clip(key)}' in "
        f"'{clip(so_far.rsplit('.', 1)[0])}'."
    )
