"""Regenerate the reference tables in docs/project-format.md from the schemas in the code.

    .venv/bin/python scripts/format_tables.py           # rewrite the tables in the document
    .venv/bin/python scripts/format_tables.py --check   # exit 1 if the document is stale

Layer parameters, initializers, per-layer options and the data/training settings all live
in `Param` schemas; generating the tables keeps the document honest when a schema changes.
Each table sits between `<!-- generated: NAME -->` and `<!-- end generated -->` markers.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path

from studio.initializers import INITIALIZERS
from studio.options import ACTIVATION, DROPOUT, INITIALIZER, NORMALIZATION
from studio.registry import catalog
from studio.schema import Param
from studio.settings import DATA, TRAINING, augmentation_schema


def value(v) -> str:
    return f"`{json.dumps(v)}`"


def number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def allowed(p: Param) -> str:
    parts = []
    if p.choices:
        parts.append(" / ".join(f"`{c}`" for c in p.choices))
    if p.minimum is not None or p.maximum is not None:
        lo = "…" if p.minimum is None else number(p.minimum)
        hi = "…" if p.maximum is None else number(p.maximum)
        parts.append(f"{lo} to {hi}")
    if p.kind == "shape":
        parts.append("1 to 3 positive integers")
    if p.kind == "int_list":
        parts.append("list of integers ≥ 0")
    return (" or " if p.kind == "int_or_choice" else "; ").join(parts)


def param_rows(params, prefix: str = "") -> list[str]:
    return [
        f"| `{prefix}{p.name}` | {p.kind} | {value(p.default)} | {allowed(p)} | {p.help} |"
        for p in params
    ]


HEADER = ["| field | kind | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]


def yes(flag: bool) -> str:
    return "yes" if flag else "—"


DOC = Path(__file__).resolve().parent.parent / "docs" / "project-format.md"


def builtin_types() -> list:
    cat = catalog()
    types = [t for group in cat.by_group().values() for t in group]
    return [t for t in types if cat.sources[t.name].startswith("studio:")]


def layers() -> None:
    print("| type | group | initializer | normalization / activation / dropout | input ports |")
    print("| --- | --- | --- | --- | --- |")
    for t in builtin_types():
        defaults = {p.name: p.default for p in t.params}
        if "inputs" in defaults:
            ports = "`in0` … `in{N-1}`, N = `inputs`"
        else:
            ports = ", ".join(f"`{p}`" for p in t.ports(defaults)) or "none"
        print(f"| {t.name} | {t.group} | {yes(t.weighted)} | {yes(t.block_options)} | {ports} |")


def layer_params() -> None:
    for t in builtin_types():
        print(f"#### {t.name}\n\n{t.summary}\n")
        if t.params:
            print("\n".join([*HEADER, *param_rows(t.params)]))
        else:
            print('No parameters: `"params": {}`.')
        print()


def initializers() -> None:
    print("| `name` | what it does | arguments (default, allowed) | weights it accepts |")
    print("| --- | --- | --- | --- |")
    for init in INITIALIZERS.values():
        args = "<br>".join(
            f"`{p.name}` {value(p.default)} ({allowed(p)}): {p.help}" for p in init.params
        )
        ranks = {None: "any", (2,): "2-D only (Linear, Output, LSTM, GRU)"}.get(
            init.ranks, "convolutions only"
        )
        print(f"| `{init.name}` | {init.title}: {init.help} | {args or '—'} | {ranks} |")
    print()


def options() -> None:
    rows = [
        *param_rows((INITIALIZER,), "initializer."),
        *param_rows(NORMALIZATION, "normalization."),
        *param_rows((ACTIVATION, DROPOUT)),
    ]
    print("\n".join([*HEADER, *rows]))
    print()


def section(schema: dict) -> None:
    rows: list[str] = []

    def walk(s: dict, path: str) -> None:
        for key, item in s.items():
            if isinstance(item, Param):
                rows.extend(param_rows((item,), path))
            else:
                walk(item, f"{path}{key}.")

    walk(schema, "")
    print("\n".join([*HEADER, *rows]))
    print()


TABLES = {
    "layers": layers,
    "layer-params": layer_params,
    "initializers": initializers,
    "options": options,
    # Built-in augmentations only: the reference must not depend on installed plugins.
    "data": lambda: section({**DATA, "augmentation": augmentation_schema(builtin_only=True)}),
    "training": lambda: section(TRAINING),
}
BLOCK = re.compile(r"(<!-- generated: ([\w-]+) -->\n)(.*?)(<!-- end generated -->)", re.S)


def render(name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        TABLES[name]()
    return out.getvalue().strip() + "\n"


def main(check: bool) -> int:
    text = DOC.read_text(encoding="utf-8")
    new = BLOCK.sub(lambda m: m[1] + "\n" + render(m[2]) + "\n" + m[4], text)
    if check:
        if new != text:
            print(f"{DOC} is out of date: run scripts/format_tables.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main("--check" in sys.argv[1:]))
