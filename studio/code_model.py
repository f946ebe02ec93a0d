"""A project's network as a readable PyTorch file (`model.py` of `studio export --pytorch`).

The file needs only torch (and torchvision for a pretrained backbone): one class `Model`,
constructible with no arguments, with one attribute per node named after the node's id, the
project's initializers applied in `__init__`, and `forward` written out in the network's
topological order with each value's shape. Each node keeps the studio's own structure
(`Block`: layer, then normalization, activation and dropout), so the parameter names are
the studio's without its `layers.` prefix and a checkpoint maps over one for one.

Layers come out as the torch modules the studio builds, written from the modules themselves
(`nn.Conv2d(1, 16, kernel_size=(3, 3), …)`), so the file says exactly what trains. A layer
that has no such form (a plugin's own module, a past run used as a backbone) is named in one
sentence; the export module checks every file it writes by loading it and comparing outputs.
"""

from __future__ import annotations

import inspect
import json
import keyword
import re

from torch import nn

from studio import __version__
from studio.analysis import Analysis
from studio.blocks import Block, FeaturesFirst
from studio.document import Project
from studio.errors import ExportError
from studio.layers.conv import GlobalAverage
from studio.layers.merge import Cat, Sum
from studio.layers.recurrent import Recurrent
from studio.shapes_text import describe
from studio.transfer.architectures import SPECS
from studio.transfer.backbone import Backbone

# The studio's own small modules, written into model.py from their source (one definition
# of each); Backbone is model.py's own: torchvision's model without its classifier.
OWN_MODULES = (Block, Sum, Cat, Recurrent, GlobalAverage, FeaturesFirst)


def _source(cls: type) -> str:
    return inspect.getsource(cls)


HELPERS = {
    "Backbone": '''
class Backbone(nn.Module):
    """A torchvision classifier without its last Linear: image → feature vector. Frozen
    parts do not train, and their batch-norm statistics stay as loaded unless update_bn."""

    def __init__(self, model: str, classifier: str, **kwargs):
        super().__init__()
        self.net = torchvision.models.get_model(model, weights=None, **kwargs)
        self.net.set_submodule(classifier, nn.Identity())
        self.frozen: list[str] = []

    def freeze(self, parts: list[str], update_bn: bool = False) -> None:
        self.frozen = [] if update_bn else list(parts)
        for path in parts:
            self.net.get_submodule(path).requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for path in self.frozen:
            for module in self.net.get_submodule(path).modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
''',
}

# The initializers as torch.nn.init calls ({w}: the parameter; a: the node's arguments).
INIT_CALLS = {
    "zeros": lambda a: "nn.init.zeros_({w})",
    "ones": lambda a: "nn.init.ones_({w})",
    "constant": lambda a: f"nn.init.constant_({{w}}, {a['value']!r})",
    "eye": lambda a: "nn.init.eye_({w})",
    "dirac": lambda a: "nn.init.dirac_({w})",
    "uniform": lambda a: f"nn.init.uniform_({{w}}, {a['low']!r}, {a['high']!r})",
    "normal": lambda a: f"nn.init.normal_({{w}}, {a['mean']!r}, {a['std']!r})",
    "trunc_normal": lambda a: (
        f"nn.init.trunc_normal_({{w}}, {a['mean']!r}, {a['std']!r}, "
        f"{a['mean'] - 2 * a['std']!r}, {a['mean'] + 2 * a['std']!r})"
    ),
    "sparse": lambda a: f"nn.init.sparse_({{w}}, {a['sparsity']!r}, {a['std']!r})",
    "xavier_uniform": lambda a: f"nn.init.xavier_uniform_({{w}}, gain={a['gain']!r})",
    "xavier_normal": lambda a: f"nn.init.xavier_normal_({{w}}, gain={a['gain']!r})",
    "kaiming_uniform": lambda a: (
        f"nn.init.kaiming_uniform_({{w}}, a={a['a']!r}, mode={a['mode']!r}, "
        f"nonlinearity={a['nonlinearity']!r})"
    ),
    "kaiming_normal": lambda a: (
        f"nn.init.kaiming_normal_({{w}}, a={a['a']!r}, mode={a['mode']!r}, "
        f"nonlinearity={a['nonlinearity']!r})"
    ),
    "orthogonal": lambda a: f"nn.init.orthogonal_({{w}}, gain={a['gain']!r})",
}


def identifier(node_id: str) -> str:
    """A node id as a Python name: other characters become _, a leading digit or a
    keyword gets a prefix."""
    name = re.sub(r"\W", "_", node_id)
    reserved = ("self", "torch", "nn", "torchvision")
    # A leading __ would be renamed by Python inside the class (self.__x → _Model__x).
    if (
        not name
        or name[0].isdigit()
        or keyword.iskeyword(name)
        or name in reserved
        or name.startswith("__")
    ):
        name = f"n_{name}"
    return name


class ModelCode:
    """The text of model.py for a project built as `model` (a studio GraphModel)."""

    def __init__(self, project: Project, model: nn.Module, analysis: Analysis):
        self.project = project
        self.model = model
        self.analysis = analysis
        self.helpers: set[str] = set()
        self.torchvision = False
        self.names = self._names()

    def _names(self) -> dict[str, str]:
        names, taken = {}, set()
        for nid in self.analysis.order:
            name = identifier(nid)
            while name in taken:
                name += "_"
            names[nid] = name
            taken.add(name)
        return names

    def key_map(self) -> dict[str, str]:
        """The studio's parameter names → this file's."""
        out = {}
        for key in self.model.state_dict():
            _, nid, rest = key.split(".", 2)
            out[key] = f"{self.names[nid]}.{rest}"
        return out

    # -- modules ----------------------------------------------------------------------------
    def module(self, m: nn.Module, nid: str) -> str:
        if isinstance(m, Block):
            self.helpers.add("Block")
            args = [self.module(m.layer, nid)]
            for part in ("norm", "act", "drop"):
                child = getattr(m, part)
                if child is not None:
                    args.append(f"{part}={self.module(child, nid)}")
            if m.norm_after_activation and m.norm is not None:
                args.append("norm_after_activation=True")
            return f"Block({', '.join(args)})"
        if isinstance(m, Sum):
            self.helpers.add("Sum")
            return "Sum()"
        if isinstance(m, Cat):
            self.helpers.add("Cat")
            return f"Cat(dim={m.dim})"
        if isinstance(m, Recurrent):
            self.helpers.add("Recurrent")
            return f"Recurrent({self.module(m.rnn, nid)}, return_sequences={m.return_sequences})"
        if isinstance(m, GlobalAverage):
            self.helpers.add("GlobalAverage")
            return f"GlobalAverage(dims={tuple(m.dims)!r})"
        if isinstance(m, FeaturesFirst):
            self.helpers.add("FeaturesFirst")
            return f"FeaturesFirst({self.module(m.inner, nid)})"
        if isinstance(m, Backbone):
            return self._backbone(m, nid)
        if isinstance(m, nn.Sequential):
            return "nn.Sequential(" + ", ".join(self.module(c, nid) for c in m) + ")"
        if type(m).__module__.startswith("torch.nn.modules") and not list(m.children()):
            return f"nn.{type(m).__name__}({m.extra_repr()})"
        node = self.project.network.nodes[nid]
        raise ExportError(
            f"Node '{nid}' ({node.type}) is built from {type(m).__name__}, which has no plain "
            "PyTorch form to write; export it as ONNX or safetensors instead."
        )

    def _backbone(self, m: Backbone, nid: str) -> str:
        node = self.project.network.nodes[nid]
        spec = SPECS.get(node.type)
        if spec is None:  # RunBackbone: another project's network inside this one
            raise ExportError(
                f"Node '{nid}' ({node.type}) reuses a past run's network, which export as "
                "code does not write out yet; export the project as ONNX or safetensors."
            )
        self.helpers.add("Backbone")
        self.torchvision = True
        kwargs = dict(spec.build_kwargs)
        if spec.model == "googlenet":
            kwargs["transform_input"] = bool(getattr(m.net, "transform_input", False))
        extra = "".join(f", {k}={v!r}" for k, v in kwargs.items())
        return f"Backbone({spec.model!r}, {spec.classifier!r}{extra})"

    # -- the file ---------------------------------------------------------------------------
    def text(self, card: dict[str, str] | None = None) -> str:
        a, names, nodes = self.analysis, self.names, self.project.network.nodes
        built = {nid: self.module(block, nid) for nid, block in self.model.layers.items()}
        init_lines, freeze_lines = self._init_lines(), self._freeze_lines()
        input_shape = tuple(a.layers[a.input_id].output_shape)
        lines = [
            "        super().__init__()",
        ]
        for nid in a.order:
            if nid not in built:
                continue
            node = nodes[nid]
            comment = f"  # {node.type}: {describe(a.layers[nid].input_shapes[0]) if a.layers[nid].input_shapes else '?'} → {describe(a.layers[nid].output_shape)}"
            lines.append(f"        self.{names[nid]} = {built[nid]}{comment}")
        if init_lines:
            lines += [
                "",
                "        # The project's initializers (biases start at zero).",
                "        with torch.no_grad():",
            ]
            lines += [f"            {line}" for line in init_lines]
        if freeze_lines:
            lines += ["", "        # Frozen by the project: these do not train."]
            lines += [f"        {line}" for line in freeze_lines]
        forward = [
            f"    def forward(self, {names[a.input_id]}: torch.Tensor) -> torch.Tensor:",
            f"        # {names[a.input_id]}: batch × {describe(input_shape)}",
        ]
        for nid, sources in ((n, a.sources[n]) for n in a.order if n in built):
            args = ", ".join(names[s] for s in sources)
            forward.append(
                f"        {names[nid]} = self.{names[nid]}({args})  # batch × {describe(a.layers[nid].output_shape)}"
            )
        forward.append(f"        return {names[a.output_id]}")
        head = self._docstring(card, input_shape)
        imports = ["import torch", "from torch import nn"]
        if self.torchvision:
            imports.insert(1, "import torchvision")
        helpers = [_source(c).strip("\n") for c in OWN_MODULES if c.__name__ in self.helpers]
        helpers += [HELPERS[h].strip("\n") for h in HELPERS if h in self.helpers]
        constants = [f"INPUT_SHAPE = {input_shape!r}  # one sample, without the batch"]
        if card and card.get("classes"):
            constants.append(f"CLASSES = {card['classes']}")
        if card and "input.multiply" in card:
            # What turns the data's values into the input: input = value × multiply + add.
            scaling = {
                "kind": card.get("input.scaling", ""),
                "per": card.get("input.scaling_per", "all"),
                "multiply": json.loads(card["input.multiply"]),
                "add": json.loads(card["input.add"]),
            }
            constants.append(f"SCALING = {scaling!r}  # input = value × multiply + add")
        parts = [
            head
            + "\n\nfrom __future__ import annotations\n\n"
            + "\n".join(imports)
            + "\n\n"
            + "\n".join(constants),
            *helpers,
            "\n".join(
                [
                    "class Model(nn.Module):",
                    f'    """{self.project.name}: {describe(input_shape)} → {describe(a.output_shape)}."""',
                    "",
                    "    def __init__(self) -> None:",
                    *lines,
                    "",
                    *forward,
                ]
            ),
        ]
        return "\n\n\n".join(p for p in parts if p) + "\n"

    def _docstring(self, card, input_shape) -> str:
        p = self.project
        about = f"\n\n{p.description}" if p.description else ""
        feed = ""
        if card and "input.preprocessing" in card:
            text = card["input.preprocessing"].replace("input.multiply and input.add", "SCALING")
            feed = f"\n\nInput: {text}"
        if card and "output.meaning" in card:
            feed += f"\nOutput: {card['output.meaning']}."
        body = f"{p.name}, written out by Studio {__version__} as plain PyTorch.{about}{feed}"
        # The project's own words may hold quotes or backslashes: kept as written.
        body = body.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        return (
            f'"""{body}\n\n'
            "    model = Model()\n"
            '    model.load_state_dict(safetensors.torch.load_file("weights.safetensors"))\n'
            '"""'
        )

    def _init_lines(self) -> list[str]:
        out = []
        nodes, names = self.project.network.nodes, self.names
        for nid, block in self.model.layers.items():
            node = nodes[nid]
            init = node.initializer["name"] if node.initializer else "default"
            if init == "default" or init not in INIT_CALLS or not isinstance(block, Block):
                continue
            call = INIT_CALLS[init](node.initializer)
            if isinstance(block.layer, Backbone):
                continue
            for pname, _ in block.layer.named_parameters():
                last = pname.rsplit(".", 1)[-1]
                target = f"self.{names[nid]}.layer.{pname}"
                if last.startswith("weight"):
                    out.append(call.format(w=target))
                elif last.startswith("bias"):
                    out.append(f"nn.init.zeros_({target})")
        return out

    def _freeze_lines(self) -> list[str]:
        out = []
        for nid, block in self.model.layers.items():
            layer = block.layer if isinstance(block, Block) else block
            if isinstance(layer, Backbone) and layer.freeze_point:
                parts = [p for paths in layer._stage_paths[: layer.freeze_point] for p in paths]
                update = ", update_bn=True" if layer.update_frozen_bn else ""
                out.append(f"self.{self.names[nid]}.layer.freeze({parts!r}{update})")
            elif not any(p.requires_grad for p in block.parameters()) and list(block.parameters()):
                out.append(f"self.{self.names[nid]}.requires_grad_(False)")
        return out
