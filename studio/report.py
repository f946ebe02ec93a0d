"""Plain-text reports for the terminal: the layer table."""

from __future__ import annotations

from studio.analysis import Analysis
from studio.document import Network
from studio.shapes_text import describe


def human_count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:g}"


def layer_table(network: Network, analysis: Analysis) -> str:
    headers = ("#", "name", "type", "output", "params", "trainable", "MACs")
    rows = []
    order = analysis.order + [n for n in network.nodes if n not in analysis.order]
    for i, nid in enumerate(order, 1):
        info = analysis.layers[nid]
        mark = "✗ " if info.error else ""
        rows.append(
            (
                str(i),
                mark + nid,
                info.type,
                describe(info.output_shape),
                f"{info.params:,}",
                "yes" if info.trainable else "frozen",
                human_count(info.macs) if info.macs else "",
            )
        )
    widths = [
        max(len(h), *(len(r[c]) for r in rows)) if rows else len(h) for c, h in enumerate(headers)
    ]
    right = {0, 4, 6}

    def line(cells):
        return "  ".join(
            c.rjust(w) if k in right else c.ljust(w) for k, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    total = analysis.trainable_params + analysis.frozen_params
    verdict = "valid" if analysis.ok else f"INVALID: {len(analysis.problems)} problem(s)"
    out.append(
        f"Total {total:,} parameters ({analysis.trainable_params:,} trainable, {analysis.frozen_params:,} frozen), "
        f"{human_count(analysis.macs)} MACs per sample; output {describe(analysis.output_shape)}; {verdict}."
    )
    return "\n".join(out)
