"""How shapes read to a person: 16×8×8 (channels×height×width), 10×64 (steps×features), 64."""

from __future__ import annotations


def describe(shape: tuple[int, ...] | list[int] | None) -> str:
    if shape is None:
        return "?"
    return "×".join(str(d) for d in shape)


def kind_of(shape: tuple[int, ...]) -> str:
    return {1: "vector", 2: "sequence", 3: "image"}.get(len(shape), f"{len(shape)}-D tensor")


def describe_kind(shape: tuple[int, ...]) -> str:
    """'a 16×8×8 image', 'a vector of 64', 'a 8×8 sequence'."""
    kind = kind_of(shape)
    if kind == "vector":
        return f"a vector of {shape[0]}"
    return f"a {describe(shape)} {kind}"
