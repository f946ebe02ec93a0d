"""The inspector: a form for the selected layers, generated from their schemas.

Every edit becomes one SetNodeFields command over all selected layers that take that
field, so "Kaiming on all 20 layers" is one action and one undo step. A value the schema
refuses is shown as a message and never reaches the document.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from studio.commands import SetNodeFields
from studio.initializers import INITIALIZERS
from studio.options import ACTIVATION, DROPOUT, INITIALIZER, NORMALIZATION
from studio.registry import catalog
from studio.shapes_text import describe
from ui.document import DocumentModel
from ui.forms import MIXED, ParamForm
from ui.freeze import FIELDS as FREEZE_FIELDS
from ui.freeze import FreezePanel


def _common(values: list):
    first = values[0]
    return first if all(v == first for v in values[1:]) else MIXED


class Inspector(QScrollArea):
    def __init__(self, model: DocumentModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.setWidgetResizable(True)
        self.setMinimumWidth(280)
        self._body = QWidget()
        self.setWidget(self._body)
        self._layout = QVBoxLayout(self._body)
        self._layout.setAlignment(Qt.AlignTop)
        self.title = QLabel()
        self.title.setTextFormat(Qt.RichText)
        self.title.setWordWrap(True)
        self.facts = QLabel()
        self.facts.setWordWrap(True)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #dc2626;")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #dc2626; font-weight: 600;")
        for w in (self.title, self.facts, self.problem, self.message):
            self._layout.addWidget(w)
        self._sections: list[QWidget] = []
        self._key = None
        self._values_only = None
        model.selection_changed.connect(self.refresh)
        model.analysis_changed.connect(self.refresh)
        model.project_replaced.connect(self.refresh)
        self.refresh()

    # -- building ---------------------------------------------------------------------
    def _clear_sections(self) -> None:
        for w in self._sections:
            self._layout.removeWidget(w)
            w.deleteLater()
        self._sections = []

    def _section(self, title: str, content: QWidget) -> QGroupBox:
        box = QGroupBox(title)
        layout = QVBoxLayout(box)
        layout.addWidget(content)
        self._layout.addWidget(box)
        self._sections.append(box)
        return box

    def refresh(self, *_):
        ids = [i for i in self.model.selection if i in self.model.project.network.nodes]
        nodes = [self.model.project.network.nodes[i] for i in ids]
        weighted = [n for n in nodes if catalog().get(n.type).weighted]
        key = (
            tuple(ids),
            tuple(n.type for n in nodes),
            _common([n.initializer["name"] for n in weighted]) if weighted else None,
        )
        if key == self._key and self._values_only is not None:
            # Same layers, same form: refresh the values in place so focus stays where it is.
            self._values_only(nodes)
            return
        self._key = key
        self._build(ids)

    def _build(self, ids: list[str]) -> None:
        self._clear_sections()
        self.message.clear()
        self._values_only = None
        if not ids:
            self.title.setText("<b>No layer selected</b>")
            self.facts.setText(
                "Select a layer on the canvas to edit it, or several to edit them together."
            )
            self.problem.clear()
            return
        nodes = [self.model.project.network.nodes[i] for i in ids]
        cat = catalog()
        types = {n.type for n in nodes}
        layers = [cat.get(n.type) for n in nodes]
        self._facts(nodes)

        setters = []
        # One backbone: its freeze point gets a slider over the stages, not a number field.
        backbone = len(ids) == 1 and layers[0].backbone
        shown = tuple(p for p in layers[0].params if not (backbone and p.name in FREEZE_FIELDS))
        if len(types) == 1 and shown:
            form = ParamForm(shown)
            setters.append(
                lambda ns, form=form, shown=shown: form.set_values(
                    {p.name: _common([n.params[p.name] for n in ns]) for p in shown}
                )
            )
            form.set_values({p.name: _common([n.params[p.name] for n in nodes]) for p in shown})
            form.edited.connect(lambda name, value: self._edit(ids, "params", {name: value}))
            self._section("Layer", form)
        if backbone:
            freeze = FreezePanel(self.model, ids[0])
            setters.append(lambda ns, freeze=freeze: freeze.refresh())
            self._section("Freeze point", freeze)

        weighted = [n for n, layer in zip(nodes, layers) if layer.weighted]
        if weighted:
            names = [n.initializer["name"] for n in weighted]
            choice = ParamForm((INITIALIZER,))
            common = _common(names)
            choice.set_values({"name": common})
            choice.edited.connect(
                lambda _, value: self._edit(
                    [n.id for n in weighted], "initializer", {"name": value}
                )
            )
            box = self._section("Initializer", choice)
            if common is not MIXED and INITIALIZERS[common].params:
                args = ParamForm(INITIALIZERS[common].params)
                args.set_values(
                    {
                        p.name: _common([n.initializer.get(p.name) for n in weighted])
                        for p in INITIALIZERS[common].params
                    }
                )
                args.edited.connect(
                    lambda name, value: self._edit_initializer(weighted, name, value)
                )
                box.layout().addWidget(args)
            help_text = QLabel(
                INITIALIZERS[common].help
                if common is not MIXED
                else "The layers use different initializers."
            )
            help_text.setWordWrap(True)
            help_text.setStyleSheet("color: palette(dark);")
            box.layout().addWidget(help_text)

        blocks = [n for n, layer in zip(nodes, layers) if layer.block_options]
        if blocks:
            block_ids = [n.id for n in blocks]

            def of_blocks(ns, ids=block_ids):
                return [n for n in ns if n.id in ids]

            norm = ParamForm(NORMALIZATION)

            def show_norm(ns, form=norm):
                values = {
                    p.name: _common([n.normalization[p.name] for n in of_blocks(ns)])
                    for p in NORMALIZATION
                }
                form.set_values(values)
                # Only the fields that mean something for the chosen kind (mixed: all).
                kind = values["kind"]
                form.set_row_visible("groups", kind in ("group", MIXED))
                form.set_row_visible("position", kind != "none")

            show_norm(nodes)
            setters.append(show_norm)
            norm.edited.connect(
                lambda name, value: self._edit(
                    [n.id for n in blocks], "normalization", {name: value}
                )
            )
            self._section("Normalization", norm)
            after = ParamForm((ACTIVATION, DROPOUT))

            # Refreshed in place after every change, an undo included (Ctrl+Z in the
            # dropout field used to leave the field showing the undone value).
            def show_after(ns, form=after):
                form.set_values(
                    {
                        "activation": _common([n.activation for n in of_blocks(ns)]),
                        "dropout": _common([n.dropout for n in of_blocks(ns)]),
                    }
                )

            show_after(nodes)
            setters.append(show_after)
            after.edited.connect(
                lambda name, value: self._edit([n.id for n in blocks], name, value)
            )
            self._section("Activation and dropout", after)

        if any(not layer.is_input for layer in layers):
            train = QCheckBox("Trainable (untick to freeze)")
            state = _common([n.trainable for n in nodes])
            train.setTristate(state is MIXED)
            train.setCheckState(
                Qt.PartiallyChecked if state is MIXED else Qt.Checked if state else Qt.Unchecked
            )
            train.clicked.connect(lambda checked: self._edit(ids, "trainable", bool(checked)))

            def show_trainable(ns, train=train):
                value = _common([n.trainable for n in ns])
                train.setTristate(value is MIXED)
                train.setCheckState(
                    Qt.PartiallyChecked if value is MIXED else Qt.Checked if value else Qt.Unchecked
                )

            setters.append(show_trainable)
            self._section("Training", train)

        def update(ns, setters=setters):
            for setter in setters:
                setter(ns)
            self._facts(ns)

        self._values_only = update

    def _facts(self, nodes) -> None:
        if len(nodes) == 1:
            node = nodes[0]
            layer = catalog().get(node.type)
            info = self.model.analysis.layers.get(node.id)
            self.title.setText(f"<b>{node.id}</b> &nbsp;·&nbsp; {node.type}")
            shape = describe(info.output_shape) if info else "?"
            params = f"{info.params:,}" if info else "?"
            self.facts.setText(f"{layer.summary}\nOutput {shape} · {params} parameters")
            self.problem.setText(info.error if info and info.error else "")
        else:
            types = sorted({n.type for n in nodes})
            self.title.setText(f"<b>{len(nodes)} layers</b> &nbsp;·&nbsp; {', '.join(types)}")
            self.facts.setText("Changes apply to every selected layer that has the option.")
            self.problem.clear()

    # -- editing ----------------------------------------------------------------------
    def _edit(self, ids: list[str], field: str, value) -> None:
        changes = {nid: {field: value} for nid in ids}
        if field == "initializer":
            # A new initializer starts from its own defaults.
            changes = {nid: {"initializer": dict(value)} for nid in ids}
        self._push(changes)

    def _edit_initializer(self, ids, name, value) -> None:
        nodes = [
            self.model.project.network.nodes[i]
            for i in ids
            if i in self.model.project.network.nodes
        ]
        self._push(
            {
                n.id: {"initializer": {**n.initializer, name: value}}
                for n in nodes
                if catalog().get(n.type).weighted
            }
        )

    def _push(self, changes: dict) -> None:
        self.model.try_push(
            lambda: SetNodeFields(self.model.project, changes), self.message.setText
        )
