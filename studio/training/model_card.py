"""What a deploying person needs to feed an exported model, written into the file itself.

An ONNX file from the studio carries these as `metadata_props` (onnxruntime:
`session.get_modelmeta().custom_metadata_map`; Netron shows them too): the project and
the studio's version, the input's name, shape and element type, how the source's values
become the input (the exact multiply and add of the run's scaling, per channel or
feature), what the output means, and the class names in output order. Every value is a
string; lists and numbers are JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from studio import __version__
from studio.data.prepare import PreparedData
from studio.document import Project
from studio.errors import StudioError
from studio.shapes_text import describe
from studio.training.setup import pick_loss

OUTPUT_MEANING = {
    "cross_entropy": "one score (logit) per class, in the order of 'classes'; softmax gives "
    "probabilities, the largest is the prediction",
    "binary_cross_entropy": "one score (logit); sigmoid gives the probability of the second "
    "of 'classes'",
    "mse": "the predicted value(s)",
    "mae": "the predicted value(s)",
    "huber": "the predicted value(s)",
}


def model_card(
    project: Project,
    input_shape: tuple[int, ...],
    data: PreparedData | None = None,
    loss: str | None = None,
    unknown: str = "",
) -> dict[str, str]:
    """The metadata for a model of `project` with its `input_shape`. `data`: the prepared
    data it was trained on (classes, scaling); without it, `unknown` says why the input's
    scaling and the classes are not given."""
    card = {
        "studio.version": __version__,
        "project": project.name,
        "input.name": "input",
        "input.shape": json.dumps(["batch", *[int(d) for d in input_shape]]),
        "input.dtype": "float32",
        "input.layout": _layout(input_shape),
        "output.name": "output",
    }
    if project.description:
        card["description"] = project.description
    if data is None:
        card["input.preprocessing"] = f"not recorded: {unknown}" if unknown else "not recorded"
        return card
    classification = bool(data.classes)
    if loss is None:  # as training picks it: the project's choice, else the Output's task
        task = next(
            (n.params.get("task") for n in project.network.nodes.values() if n.type == "Output"),
            None,
        )
        loss = pick_loss(project.training.get("loss", "auto"), task, classification)
    card["task"] = "classification" if classification else "regression"
    if classification:
        card["classes"] = json.dumps(list(data.classes))
    card["output.meaning"] = OUTPUT_MEANING.get(loss, "the network's output")
    if data.scaling is not None:
        s = data.scaling
        card["input.preprocessing"] = _preprocessing(s, project, input_shape)
        card["input.scaling"] = s.kind
        card["input.multiply"] = json.dumps(s.multiply)
        card["input.add"] = json.dumps(s.add)
        card["input.scaling_per"] = s.per
        if s.value_range is not None:
            card["input.value_range"] = json.dumps(list(s.value_range))
    return card


def _layout(shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        return "NCHW (batch, channels, height, width)"
    if len(shape) == 2:
        return "NTF (batch, steps, features)"
    return "NF (batch, features)"


def _preprocessing(s, project: Project, input_shape: tuple[int, ...]) -> str:
    source = project.data.get("source", "")
    if s.value_range is not None:
        lo, hi = s.value_range
        values = f"{source} values from {lo:g} to {hi:g}"
    else:
        values = f"{source} values"
    if source == "digits" and len(input_shape) == 3 and tuple(input_shape) != (1, 8, 8):
        colour = "its gray channel repeated to 3" if input_shape[0] == 3 else "gray"
        values = (
            f"each 8×8 digit upscaled (bilinear) to {describe(input_shape[1:])}, {colour}; {values}"
        )
    if source == "image_folder" and len(input_shape) == 3:
        colour = "RGB" if input_shape[0] == 3 else "grayscale"
        size = describe(input_shape[1:])
        values = f"each image as {colour}, resized to {size} (height×width); pixel {values}"
    per = {"all": "", "channel": " per channel", "feature": " per feature"}[s.per]
    if s.kind == "none":
        return f"{values}, fed as they are."
    return (
        f"{values}; input = value × multiply + add{per} (data.scaling = {s.kind}; "
        f"multiply and add are in input.multiply and input.add)."
    )


CARD = "model_card.json"  # in a run folder, written when the run starts training


def card_for(
    project: Project,
    input_shape: tuple[int, ...],
    base: Path = Path("."),
    run_folder: Path | None = None,
) -> dict[str, str]:
    """The card of a trained run (as its training recorded it), else of the project: its
    data prepared as training prepares it. Data that cannot be read leaves the scaling
    and classes out, with the reason."""
    if run_folder is not None:
        try:
            return json.loads((Path(run_folder) / CARD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass  # a run from before cards were kept: from its project, as below
    from studio.data.prepare import prepare_data

    try:
        data = prepare_data(project.data, input_shape, project.training["seed"], base)
    except StudioError as err:
        return model_card(project, input_shape, unknown=str(err))
    return model_card(project, input_shape, data)
