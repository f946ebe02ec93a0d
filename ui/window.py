"""The studio's main window: palette, canvas, inspector, data and training panels, live
plots, findings and runs, around one open project."""

from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QScrollArea,
    QTabBar,
    QWidget,
)

from studio.bundled import EXAMPLES
from studio.document import Project
from studio.errors import StudioError
from studio.memory import estimate as estimate_memory
from studio.projectfile import load_project, save_project
from studio.report import human_count
from studio.settings import DATA, TRAINING
from studio.shapes_text import describe
from studio.training.eventlog import EventTail
from studio.training.health import layer_health, node_health
from studio.training.runs import Run
from studio.training.series import replay
from studio.training.setup import pick_device
from studio.transfer.edits import TransferEditError, use_run_as_backbone
from ui.augment_panel import AugmentPanel
from ui.background import BackgroundJob
from ui.canvas import GraphCanvas
from ui.data_preview import DataPreview
from ui.document import DocumentModel
from ui.evaluation_panel import EvaluationPanel
from ui.export_dialog import ExportDialog
from ui.findings import FindingsPanel
from ui.inspector import Inspector
from ui.lr_finder import LRFinderDialog
from ui.notices import NoticeRelay
from ui.pacing import Pacer
from ui.palette import LayerPalette
from ui.plots import TrainingPlots
from ui.plots import apply_theme as apply_plot_theme
from ui.runs_panel import RunsPanel, run_label
from ui.settings_panel import SettingsPanel
from ui.strategy_dialog import StrategyDialog
from ui.theme import apply_theme, icon, is_dark
from ui.training import TrainingController

MAX_RECENT = 8
HEALTH_INTERVAL_MS = 500


def runs_root() -> Path:
    """Where the window keeps runs: $STUDIO_RUNS, else Studio/runs in the user's data
    folder (~/.local/share/Studio/runs on Linux)."""
    if os.environ.get("STUDIO_RUNS"):
        return Path(os.environ["STUDIO_RUNS"])
    base = QStandardPaths.writableLocation(QStandardPaths.GenericDataLocation) or str(
        Path.home() / ".local" / "share"
    )
    root = Path(base) / "Studio" / "runs"
    # Earlier versions kept them under the organization and the application name, both
    # "Studio" (…/Studio/Studio/runs): move them once.
    old = Path(base) / "Studio" / "Studio" / "runs"
    if old.is_dir() and not root.exists():
        try:
            old.rename(root)
        except OSError:
            return old
    return root


class MainWindow(QMainWindow):
    def __init__(self, project: Project | None = None, path: Path | None = None):
        super().__init__()
        self.settings = QSettings()
        self.model = DocumentModel(project or Project(), path, self)
        self.runs_root = runs_root()
        # One measure of the GUI thread's cost paces both draining and drawing.
        self.pacer = Pacer()
        self.training = TrainingController(self, self.pacer)
        self._eta_origin: tuple[float, int] | None = None  # (time, step) the rate counts from
        self._total_steps = 0
        self._fold = ""  # "fold 2 of 5 · " while an experiment's run trains
        # File → Watch Run…: (run folder, its event log's reader), polled a few times a
        # second.
        self._watched = None
        self._watch_idle = 0
        # Train with training.processes > 1: a `studio train --nproc N` subprocess, whose
        # run folder is followed like a watched one (ui/parallel.py).
        self._job = None
        self._job_paused = False
        self._watch_timer = QTimer(self)
        self._watch_timer.setInterval(250)
        self._watch_timer.timeout.connect(self._poll_watched)
        self._first_step = 0
        self._train_samples: int | None = None  # from a run's start event, when it says
        # Node health marks follow the plots' history at a few Hz, not per event.
        self._health_timer = QTimer(self)
        self._health_timer.setSingleShot(True)
        self._health_timer.setInterval(HEALTH_INTERVAL_MS)
        self._health_timer.timeout.connect(self._update_health)

        self.canvas = GraphCanvas(self.model)
        self.setCentralWidget(self.canvas)
        self.palette_panel = LayerPalette()
        self.inspector = Inspector(self.model)
        self.data_preview = DataPreview(self.model)
        # Augmentation's nested sections have their own panel, with a preview.
        data_fields = {k: v for k, v in DATA.items() if k != "augmentation"}
        self.data_panel = SettingsPanel(self.model, "data", data_fields, extra=self.data_preview)
        self.augment_panel = AugmentPanel(self.model)
        self.training_panel = SettingsPanel(self.model, "training", TRAINING)
        self.plots = TrainingPlots(pacer=self.pacer)
        self.findings = FindingsPanel(self.model)
        self.runs = RunsPanel()
        self.evaluation = EvaluationPanel()
        self._build_docks()
        self._build_actions()
        self._build_status_bar()
        self._connect()
        self._restore_settings()
        self._project_changed()

    # -- layout -----------------------------------------------------------------------
    def _dock(
        self, title: str, widget: QWidget, area, name: str, scroll: bool = False
    ) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        if scroll:
            # A panel that grows (augmentation turned on, samples shown) scrolls inside its
            # dock instead of growing the dock, and with it the window past the screen.
            area_widget = QScrollArea()
            area_widget.setWidgetResizable(True)
            area_widget.setFrameShape(QScrollArea.Shape.NoFrame)
            area_widget.setWidget(widget)
            widget = area_widget
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        self.setDockNestingEnabled(True)
        self.palette_dock = self._dock(
            "Layers", self.palette_panel, Qt.LeftDockWidgetArea, "palette"
        )
        self.inspector_dock = self._dock(
            "Inspector", self.inspector, Qt.RightDockWidgetArea, "inspector"
        )
        self.data_dock = self._dock(
            "Data", self.data_panel, Qt.RightDockWidgetArea, "data", scroll=True
        )
        self.training_dock = self._dock(
            "Training", self.training_panel, Qt.RightDockWidgetArea, "training", scroll=True
        )
        self.tabifyDockWidget(self.inspector_dock, self.data_dock)
        self.augment_dock = self._dock(
            "Augmentation", self.augment_panel, Qt.RightDockWidgetArea, "augmentation", scroll=True
        )
        self.augment_dock.visibilityChanged.connect(self.augment_panel.shown)
        self.tabifyDockWidget(self.data_dock, self.training_dock)
        self.tabifyDockWidget(self.training_dock, self.augment_dock)
        self.inspector_dock.raise_()
        self.plots_dock = self._dock("Live plots", self.plots, Qt.BottomDockWidgetArea, "plots")
        self.runs_dock = self._dock("Runs", self.runs, Qt.BottomDockWidgetArea, "runs")
        self.evaluation_dock = self._dock(
            "Evaluation", self.evaluation, Qt.BottomDockWidgetArea, "evaluation"
        )
        self.tabifyDockWidget(self.plots_dock, self.runs_dock)
        self.tabifyDockWidget(self.runs_dock, self.evaluation_dock)
        self.plots_dock.raise_()
        self.findings_dock = self._dock(
            "Findings", self.findings, Qt.RightDockWidgetArea, "findings"
        )
        self.splitDockWidget(self.inspector_dock, self.findings_dock, Qt.Vertical)
        self.resizeDocks([self.palette_dock], [210], Qt.Horizontal)
        self.resizeDocks([self.inspector_dock], [330], Qt.Horizontal)
        self.resizeDocks([self.plots_dock], [330], Qt.Vertical)

    def _action(
        self, text: str, slot, shortcut=None, icon_name: str | None = None, tip: str = ""
    ) -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
            self._icons[action] = icon_name  # redrawn in the new colours on a theme change
        if shortcut is not None:
            action.setShortcuts(
                shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)]
            )
        action.setStatusTip(tip or text.replace("&", "").replace("…", ""))
        action.setToolTip(
            f"{text.replace('&', '').replace('…', '')}"
            + (f" ({action.shortcut().toString()})" if shortcut else "")
        )
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        self._icons: dict[QAction, str] = {}
        stack = self.model.undo_stack
        self.act_new = self._action("&New", self.new_project, QKeySequence.New, "new")
        self.act_open = self._action("&Open…", self.open_dialog, QKeySequence.Open, "open")
        self.act_save = self._action("&Save", self.save, QKeySequence.Save, "save")
        self.act_save_as = self._action("Save &As…", self.save_as, QKeySequence.SaveAs)
        self.act_export = self._action(
            "&Export…",
            self.export,
            "Ctrl+E",
            "export",
            "Export to ONNX, safetensors or PyTorch code",
        )
        self.act_quit = self._action("&Quit", self.close, QKeySequence.Quit)
        self.act_watch = self._action(
            "&Watch Run…",
            lambda: self.watch_run(),
            tip="Follow a run another process is training (studio train, a cluster job): "
            "its live plots and findings, read-only",
        )
        self.act_undo = stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcut(QKeySequence.Undo)
        self.act_undo.setIcon(icon("undo"))
        self._icons[self.act_undo] = "undo"
        self.act_redo = stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence.Redo, QKeySequence("Ctrl+Y")])
        self.act_redo.setIcon(icon("redo"))
        self._icons[self.act_redo] = "redo"
        self.act_copy = self._action(
            "&Copy", lambda: self.canvas.copy_selection(), QKeySequence.Copy
        )
        self.act_paste = self._action("&Paste", lambda: self.canvas.paste(), QKeySequence.Paste)
        self.act_delete = self._action(
            "&Delete",
            lambda: self.canvas.delete_selection(),
            [QKeySequence.Delete, QKeySequence(Qt.Key_Backspace)],
        )
        self.act_select_all = self._action("Select &All", self.select_all, QKeySequence.SelectAll)
        for a in (self.act_copy, self.act_paste, self.act_delete, self.act_select_all):
            # Canvas-scoped: typing in the inspector must keep its own copy/paste/delete.
            a.setShortcutContext(Qt.WidgetWithChildrenShortcut)
            self.canvas.addAction(a)
        self.act_check = self._action(
            "&Check", self.check, "Ctrl+K", "check", "Check shapes and show problems"
        )
        self.act_train = self._action(
            "&Train", self.train, ["Ctrl+Return", "Ctrl+Enter"], "train", "Train the model"
        )
        self.act_train.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.act_pause = self._action(
            "&Pause", self.toggle_pause, "Ctrl+Shift+P", "pause", "Pause or resume training"
        )
        self.act_stop = self._action(
            "&Stop", self.stop_training, "Ctrl+.", "stop", "Stop training (keeps a checkpoint)"
        )
        self.act_lr_find = self._action(
            "Find &Learning Rate…",
            self.find_learning_rate,
            tip="Sweep the learning rate on a copy of the model and suggest one",
        )
        self.act_fit = self._action("&Fit to View", lambda: self.canvas.fit_to_view(), "F", "fit")
        self.act_fit.setShortcutContext(Qt.WidgetWithChildrenShortcut)
        self.canvas.addAction(self.act_fit)
        self.act_layout = self._action(
            "Auto &Layout", lambda: self.canvas.auto_layout(), "Ctrl+L", "layout"
        )
        self.act_strategy = self._action(
            "Fine-tuning &Strategy…",
            self.choose_strategy,
            tip="Choose how much of the pretrained backbone trains, with a recommendation",
        )
        self.act_dark = self._action("&Dark Theme", self.toggle_theme)
        self.act_dark.setCheckable(True)
        self.act_about = self._action("&About Studio", self.about)

        menu = self.menuBar().addMenu("&File")
        menu.addActions([self.act_new, self.act_open])
        self.examples_menu = menu.addMenu("Open &Example")
        self.examples_menu.setToolTipsVisible(True)
        for path in sorted(EXAMPLES.glob("*.json")):
            title, description = example_text(path)
            action = self.examples_menu.addAction(title, lambda p=path: self.open(p))
            action.setToolTip(description)
            action.setStatusTip(description)
        self.recent_menu = menu.addMenu("Open &Recent")
        menu.addSeparator()
        menu.addActions([self.act_save, self.act_save_as, self.act_export])
        menu.addSeparator()
        menu.addAction(self.act_watch)
        menu.addSeparator()
        menu.addAction(self.act_quit)
        edit = self.menuBar().addMenu("&Edit")
        edit.addActions([self.act_undo, self.act_redo])
        edit.addSeparator()
        edit.addActions([self.act_copy, self.act_paste, self.act_delete, self.act_select_all])
        view = self.menuBar().addMenu("&View")
        view.addActions([self.act_fit, self.act_layout])
        view.addSeparator()
        for dock in (
            self.palette_dock,
            self.inspector_dock,
            self.data_dock,
            self.training_dock,
            self.augment_dock,
            self.plots_dock,
            self.findings_dock,
            self.runs_dock,
        ):
            view.addAction(dock.toggleViewAction())
        view.addSeparator()
        # Which plots show: on a small screen a person keeps the ones they read.
        self.plots_menu = view.addMenu("&Plots")
        self.plot_actions: dict[str, QAction] = {}
        for name, title in TrainingPlots.NAMES.items():
            action = self.plots_menu.addAction(title)
            action.setCheckable(True)
            action.setChecked(True)
            action.toggled.connect(lambda on, name=name: self._show_plot(name, on))
            self.plot_actions[name] = action
        view.addSeparator()
        view.addAction(self.act_dark)
        run = self.menuBar().addMenu("&Run")
        run.addActions([self.act_check, self.act_train, self.act_pause, self.act_stop])
        run.addSeparator()
        run.addAction(self.act_lr_find)
        transfer = self.menuBar().addMenu("T&ransfer")
        transfer.addAction(self.act_strategy)
        self.act_getting_started = self._action("&Getting Started", self.getting_started, "F1")
        self.act_shortcuts = self._action("&Keyboard Shortcuts", self.show_shortcuts)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addActions([self.act_getting_started, self.act_shortcuts])
        help_menu.addSeparator()
        help_menu.addAction(self.act_about)

        bar = self.addToolBar("Main")
        bar.setObjectName("main-toolbar")
        bar.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        bar.addActions([self.act_new, self.act_open, self.act_save])
        bar.addSeparator()
        bar.addActions([self.act_undo, self.act_redo])
        # Icons only: their text names the last edit ("Undo Set learning rate to 0.01") and
        # would shift the whole toolbar as it changes; the tooltip still says it.
        for action in (self.act_undo, self.act_redo):
            bar.widgetForAction(action).setToolButtonStyle(Qt.ToolButtonIconOnly)
        bar.addSeparator()
        bar.addActions([self.act_check, self.act_train, self.act_pause, self.act_stop])
        bar.addSeparator()
        bar.addActions([self.act_export, self.act_fit, self.act_layout])

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setFixedWidth(230)
        self.progress.setTextVisible(True)
        # Its space is kept while hidden: showing it must not change the status bar's
        # height, which would re-lay out the whole window and repaint every plot (~170 ms
        # on 2 cores, at the moment Train is pressed).
        policy = self.progress.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.progress.setSizePolicy(policy)
        self.progress.hide()
        self.eta = QLabel()
        # A fixed size: its text changes every second while training, and a label that may
        # grow re-lays out the main window each time (~70 ms stalls on 2 cores).
        metrics = self.eta.fontMetrics()
        self.eta.setFixedSize(
            metrics.horizontalAdvance("early stopped in 59 min 59 s") + 8, metrics.height() + 4
        )
        self.eta.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.validity = QLabel()
        self.params_label = QLabel()
        try:
            device = str(pick_device("auto"))
        except StudioError:
            device = "cpu"
        self.device_label = QLabel(f"Device: {device}")
        for w in (self.eta, self.progress, self.validity, self.params_label, self.device_label):
            status.addPermanentWidget(w)
        # A message longer than the space left of the labels is cut; hovering shows it all.
        status.messageChanged.connect(lambda text: status.setToolTip(text))

    def _connect(self) -> None:
        m = self.model
        m.analysis_changed.connect(self._update_status)
        # The memory estimate follows the training and data settings too (batch size, path).
        m.undo_stack.indexChanged.connect(self._update_status)
        m.undo_stack.cleanChanged.connect(self._update_title)
        m.project_replaced.connect(self._project_changed)
        m.selection_changed.connect(self._selection_changed)
        self.palette_panel.layer_requested.connect(self._append_layer)
        self.canvas.status_message.connect(lambda text: self.statusBar().showMessage(text, 4000))
        self.notices = NoticeRelay(self)
        self.notices.said.connect(lambda text: self.statusBar().showMessage(text, 12000))
        self.plots.layer_clicked.connect(lambda name: m.select([self._node_of_layer(name)]))
        self.findings.show_layers.connect(self._show_layers)
        self.findings.find_lr_requested.connect(self.find_learning_rate)
        self.findings.count_changed.connect(
            lambda n: self.findings_dock.setWindowTitle(f"Findings ({n})" if n else "Findings")
        )
        self.findings.fix_applied.connect(
            lambda title: self.statusBar().showMessage(
                f"Applied the fix for '{title}'. Train again to compare.", 6000
            )
        )
        self.runs.compare_requested.connect(self._compare_runs)
        self.runs.use_as_backbone.connect(self.use_run_as_backbone)
        self.runs.export_requested.connect(self.export)
        self.runs.evaluate_requested.connect(self.evaluate_run)
        self.training.events.connect(self._on_events)
        self.training.finished.connect(self._on_finished)
        self.training.note.connect(self._on_note)
        self.training.state_changed.connect(self._on_state)
        self._on_state("idle")

    # -- settings ---------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 930)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        self._first_layout = state is None  # sized to the screen when first shown
        self.act_dark.setChecked(is_dark())
        hidden = self.settings.value("plots/hidden", []) or []
        for name in [hidden] if isinstance(hidden, str) else hidden:
            if name in self.plot_actions:
                self.plot_actions[name].setChecked(False)
        self._update_recent_menu()

    def _save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())

    def _show_plot(self, name: str, shown: bool) -> None:
        self.plots.set_shown(name, shown)
        hidden = [n for n, on in self.plots.shown().items() if not on]
        self.settings.setValue("plots/hidden", hidden)

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", []) or []
        return [value] if isinstance(value, str) else list(value)

    def _remember(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self.recent_files() if p != str(path)]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self._update_recent_menu()

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        for p in self.recent_files():
            self.recent_menu.addAction(p, lambda p=p: self.open(Path(p)))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    # -- files ------------------------------------------------------------------------
    def _confirm_discard(self) -> bool:
        if not self.model.dirty:
            return True
        answer = QMessageBox.question(
            self,
            "Unsaved changes",
            f"Save the changes to {self.model.project.name}?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel,
            QMessageBox.Save,
        )
        if answer == QMessageBox.Save:
            return self.save()
        return answer == QMessageBox.Discard

    def new_project(self) -> None:
        if not self._confirm_discard():
            return
        self.model.replace(Project.new(), None)

    def open_dialog(self) -> None:
        start = str(self.model.path.parent) if self.model.path else str(EXAMPLES)
        path, _ = QFileDialog.getOpenFileName(
            self, "Open project", start, "Studio projects (*.json)"
        )
        if path:
            self.open(Path(path))

    def open(self, path: Path) -> bool:
        if not self._confirm_discard():
            return False
        try:
            project = load_project(path)
        except StudioError as err:
            QMessageBox.warning(self, "Cannot open project", str(err))
            return False
        self.model.replace(project, Path(path))
        self._remember(Path(path).resolve())
        return True

    def save(self) -> bool:
        if self.model.path is None or self.model.path.is_relative_to(EXAMPLES):
            return self.save_as()
        return self._write(self.model.path)

    def save_as(self) -> bool:
        start = str(Path.home() / f"{self.model.project.name}.json")
        path, _ = QFileDialog.getSaveFileName(
            self, "Save project", start, "Studio projects (*.json)"
        )
        if not path:
            return False
        if not path.endswith(".json"):
            path += ".json"
        self.model.project.name = Path(path).stem
        return self._write(Path(path))

    def _write(self, path: Path) -> bool:
        try:
            save_project(self.model.project, path)
        except OSError as err:
            QMessageBox.warning(
                self, "Cannot save", f"Cannot write '{path}': {err.strerror or err}."
            )
            return False
        self.model.path = path
        self.model.undo_stack.setClean()
        self._remember(path.resolve())
        self._update_title()
        self.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    # -- project state ----------------------------------------------------------------
    def _project_changed(self) -> None:
        self._update_title()
        self._update_status()
        self.findings.clear()
        self.plots.clear_comparison()  # another project's run would not compare
        self.plots.clear()
        self.canvas.set_health({})
        self.runs.show_project(self.runs_root, self.model.project.name)
        QTimer.singleShot(0, self.canvas.fit_to_view)

    def _update_title(self, *_) -> None:
        where = str(self.model.path) if self.model.path else "not saved"
        star = " •" if self.model.dirty else ""
        self.setWindowTitle(f"{self.model.project.name}{star} — {where} — Studio")

    def _update_status(self) -> None:
        a = self.model.analysis
        self.params_label.setText(
            f"Parameters: {human_count(a.trainable_params)} trainable · {human_count(a.frozen_params)} frozen"
        )
        self._memory = None
        if a.ok:
            # Limits known before training: does one step fit this machine's memory?
            base = self.model.path.parent if self.model.path else Path.cwd()
            self._memory = estimate_memory(self.model.project, a, self._device_choice(), base)
            fits = self._memory.fits
            self.validity.setText("✔ Valid network" if fits else "✘ Too big for memory")
            self.validity.setStyleSheet("color: #16a34a;" if fits else "color: #dc2626;")
            self.validity.setToolTip(
                f"Output {shape_text(a.output_shape)}. {self._memory.sentence()}"
            )
        else:
            self.validity.setText(f"✘ {len(a.problems)} problem(s)")
            self.validity.setStyleSheet("color: #dc2626;")
            self.validity.setToolTip("\n".join(p.message for p in a.problems))

    def _device_choice(self) -> str:
        try:
            return str(pick_device(self.model.project.training.get("device", "auto")))
        except StudioError:
            return "cpu"

    def _selection_changed(self, ids: list[str]) -> None:
        if ids:
            self.plots.select_layer(ids[0])
            self.inspector_dock.raise_()

    def _append_layer(self, type_name: str) -> None:
        after = self.model.selection[-1] if self.model.selection else None
        self.canvas.add_layer(type_name, after=after)

    def _show_layers(self, ids: list[str]) -> None:
        self.canvas.highlight_nodes(ids, "#f59e0b")
        self.model.select(ids)
        if ids:
            self.canvas.center_on(ids[0])

    def select_all(self) -> None:
        self.model.select(list(self.model.project.network.nodes))

    def _node_of_layer(self, name: str) -> str:
        """The node a plotted layer belongs to: a backbone's stages plot as 'node.stage'."""
        nodes = self.model.project.network.nodes
        return name if name in nodes else name.split(".", 1)[0]

    # -- transfer learning --------------------------------------------------------------
    def choose_strategy(self) -> None:
        dialog = StrategyDialog(self.model, samples=self._known_samples(), parent=self)
        if dialog.exec():
            self.statusBar().showMessage(dialog.applied_text, 8000)

    def _known_samples(self) -> int | None:
        """Training samples, when a run or the data preview has counted them."""
        return self._train_samples or getattr(self.data_preview, "train_samples", None)

    def use_run_as_backbone(self, run_dir: Path) -> None:
        project_dir = self.model.path.parent if self.model.path else None
        try:
            command, node_id = use_run_as_backbone(self.model.project, run_dir, project_dir)
        except TransferEditError as err:
            QMessageBox.warning(self, "Cannot use the run as a backbone", str(err))
            return
        self.model.push(command)
        self.model.select([node_id])
        self.canvas.fit_to_view()
        self.statusBar().showMessage(
            f"{command.text}: '{node_id}' now feeds the head. Pick its freeze point in the "
            "inspector.",
            8000,
        )

    # -- run --------------------------------------------------------------------------
    def check(self) -> None:
        a = self.model.analysis
        if a.ok:
            self.statusBar().showMessage(
                f"The network is valid: output {shape_text(a.output_shape)}, "
                f"{a.trainable_params:,} trainable parameters, "
                f"{human_count(a.macs)} MACs per sample.",
                8000,
            )
            return
        bad = [p.node for p in a.problems if p.node]
        self.model.select(bad)
        self.canvas.highlight_nodes(bad, "#dc2626")
        QMessageBox.warning(
            self, "Problems in the network", "\n\n".join(p.message for p in a.problems)
        )

    def train(self) -> None:
        if not self.model.analysis.ok:
            self.check()
            return
        if self.training.running or self._job is not None:
            answer = QMessageBox.question(
                self, "Training is running", "Stop the current run and start a new one?"
            )
            if answer != QMessageBox.Yes:
                return
            self._end_job(wait=True)
        force = False
        if self._memory is not None and not self._memory.fits:
            answer = QMessageBox.question(
                self,
                "The network will not fit in memory",
                f"{self._memory.sentence()}\n\nTrain anyway?",
            )
            if answer != QMessageBox.Yes:
                return
            force = True
        self.stop_watching()  # the plots show this run now
        self.findings.new_run()
        self._fold = ""
        self.statusBar().clearMessage()  # "Training stopped…" was the last run's news
        self.device_label.setToolTip("")  # and why it had fewer threads
        self.eta.setText("")
        self.plots.clear(draw_now=False)
        self.canvas.clear_highlight()
        self.canvas.set_health({})
        base = self.model.path.parent if self.model.path else Path.cwd()
        processes = self._processes()
        if processes > 1:  # torchrun's processes train; the window follows rank 0's log
            self._start_job(processes, base, force)
        else:
            self.training.start(self.model.project, self.runs_root, base, force=force)
        _bring_forward(self.plots_dock)

    def _processes(self) -> int:
        from studio.training.distributed import processes_for

        t = self.model.project.training
        return processes_for(t["processes"], t["device"])

    def _start_job(self, processes: int, base: Path, force: bool) -> None:
        from ui.parallel import ParallelJob

        self._job = ParallelJob(self.model.project, self.runs_root, base, processes, force)
        self._watched = None
        self._watch_idle = 0
        self._on_state("running")
        self.progress.show()
        self.statusBar().showMessage(
            f"Starting {processes} data-parallel training processes (torchrun)…"
        )
        self._watch_timer.start()

    def find_learning_rate(self) -> None:
        if not self.model.analysis.ok:
            self.check()
            return
        if self.training.running:
            self.statusBar().showMessage("Stop training first: the sweep needs the CPU.", 6000)
            return
        base = self.model.path.parent if self.model.path else Path.cwd()
        dialog = LRFinderDialog(self.model, base, self)
        if dialog.exec() and dialog.result is not None:
            self.statusBar().showMessage(
                f"Learning rate set to {self.model.project.training['optimizer']['lr']:g} "
                "(Ctrl+Z to undo).",
                8000,
            )

    def toggle_pause(self) -> None:
        if self._job is not None:  # several processes: a pause file they all wait on
            self._job_paused = not self._job_paused
            self._job.pause(self._job_paused)
            self._on_state("paused" if self._job_paused else "running")
            return
        if self.training.state == "paused":
            self.training.resume()
        else:
            self.training.pause()

    def stop_training(self) -> None:
        if self._job is not None:
            self._job.pause(False)
            self._job.stop()
            self._on_state("stopping")
            return
        self.training.stop()

    def _on_state(self, state: str) -> None:
        running = state in ("running", "paused", "stopping")
        self.act_train.setEnabled(state != "stopping")
        self.act_pause.setEnabled(running and state != "stopping")
        self.act_pause.setText("&Resume" if state == "paused" else "&Pause")
        self.act_pause.setIcon(icon("train" if state == "paused" else "pause"))
        self.act_stop.setEnabled(running and state != "stopping")
        # A sweep beside a training run would halve both their speeds.
        self.act_lr_find.setEnabled(not running)
        self.findings.set_training(running)
        self.progress.setVisible(running)
        if state == "paused":
            self.eta.setText("Paused")

    def _on_note(self, said: str, more: str) -> None:
        """News of the run starting (fewer CPU threads): said in the status bar, and kept
        with the reason on the device label for as long as the run is shown."""
        self.statusBar().showMessage(said, 20000)
        self.device_label.setToolTip(f"{said}\n{more}")

    def _on_events(self, events: list[dict]) -> None:
        for event in events:
            kind = event["type"]
            self.plots.feed(event)
            if kind == "fold":  # an experiment's next run: its plots start afresh
                self._fold = f"{event['label']} · "
                self.plots.clear(draw_now=False)
                self.canvas.set_health({})
                self.statusBar().showMessage(f"{event['title']}: {event['label']}")
            elif kind == "start":
                self._total_steps = event["total_steps"]
                self._first_step = event["first_step"]
                self._train_samples = event.get("train_samples", self._train_samples)
                self._eta_origin = None
                self.progress.setRange(0, max(1, self._total_steps))
                threads = event.get("threads", 0)
                self.device_label.setText(
                    f"Device: {event['device']}"
                    + (
                        f", {threads} thread{'s' if threads > 1 else ''}"
                        if threads and event["device"] == "cpu"
                        else ""
                    )
                )
            elif kind == "steps":
                done = int(event["step"][-1]) + 1
                self._show_progress(done, event["epoch"], event["batches_per_epoch"])
            elif kind == "phase":  # fine-tuning: the plots mark it; the status bar says it
                self.statusBar().showMessage(event.get("label", ""), 8000)
            elif kind == "download":  # a backbone's weights, before training starts
                self._show_download(event)
            elif kind == "pretrained":  # what a backbone loaded (a partial load: a finding)
                self.statusBar().showMessage(event["report"], 10000)
            elif kind == "finding":
                # Not raised: the person may be working in another tab; the dock's title
                # counts the findings.
                self.findings.add(event)
                self.canvas.highlight_nodes(event.get("layers", []), "#f59e0b")
            if kind in ("flow", "activations") and not self._health_timer.isActive():
                self._health_timer.start()
        self.plots.refresh()

    # -- watching a run another process trains -----------------------------------------
    def watch_run(self, folder: Path | None = None) -> None:
        """Follow a run folder's event log (File → Watch Run…): its plots and findings
        fill as the run writes them; nothing here can change it."""
        from studio.training.eventlog import EVENTS

        if folder is None:
            chosen = QFileDialog.getExistingDirectory(
                self, "Watch a run: choose its run folder", str(self.runs_root)
            )
            if not chosen:
                return
            folder = Path(chosen)
        folder = Path(folder)
        if not (folder / "project.json").is_file():
            QMessageBox.warning(
                self,
                "Not a run folder",
                f"'{folder}' is not a run folder: it has no project.json. Choose the folder "
                "of one run (runs/<project>/<run id>).",
            )
            return
        if self.training.running:
            self.statusBar().showMessage("Stop training first: the plots show that run.", 6000)
            return
        if not (folder / EVENTS).is_file() and (folder / "summary.json").is_file():
            QMessageBox.information(
                self,
                "Nothing to watch",
                f"The run '{folder.name}' ended before runs kept an event log; Runs → "
                "tick it → Compare shows its curves.",
            )
            return
        self.stop_watching()
        self.findings.new_run()
        self.plots.clear(draw_now=False)
        self.canvas.clear_highlight()
        self.canvas.set_health({})
        self._fold = ""
        self._watched = (folder, EventTail(folder))
        self._watch_idle = 0
        self.progress.show()
        self.statusBar().showMessage(f"Watching the run {folder.name} (read-only)…")
        self._watch_timer.start()
        self._poll_watched()

    def stop_watching(self) -> None:
        self._watch_timer.stop()
        self._watched = None

    def _end_job(self, wait: bool = False, closing: bool = False) -> None:
        """The training processes are done: show the run as a finished run, or say why
        it failed in their own sentence."""
        import json

        job = self._job
        if job is None:
            return
        if wait and not job.finished:
            job.stop()
            try:
                job.process.wait(60)
            except Exception:
                job.process.kill()
        folder = job.run_folder()
        summary = None
        if folder is not None and (folder / "summary.json").is_file():
            try:
                summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                summary = None
        ended_well = job.process.poll() in (0, 130)  # 130: stopped (Ctrl-C / Stop)
        if summary is None or summary.get("status") == "failed" or not ended_well:
            summary = {"status": "failed", "error": job.error()}
        self._job, self._job_paused = None, False
        self.stop_watching()
        job.close()
        self._on_state("idle")
        if not closing:
            self._on_finished(summary)

    def _poll_watched(self) -> None:
        from studio.training.runs import alive

        job = self._job
        if job is not None and self._watched is None:
            folder = job.run_folder()
            if folder is not None:
                self._watched = (folder, EventTail(folder))
                self.statusBar().showMessage(
                    f"Training in {job.processes} data-parallel processes (torchrun); Pause "
                    "and Stop act on all of them."
                )
            elif job.finished:  # it ended before it made a run folder: say why
                self._end_job()
                return
        if self._watched is None:
            return
        folder, tail = self._watched
        events = tail.read()
        if events:
            self._watch_idle = 0
            self._on_events(events)
        else:
            self._watch_idle += 1
        ended = next((e for e in reversed(events) if e["type"] == "end"), None)
        if job is not None:
            if job.finished and not events:
                self._end_job()
            return
        # A run whose process died writes no end: its lock tells (after a quiet while).
        gone = not events and self._watch_idle >= 8 and not alive(folder)
        if ended is not None or gone:
            self.stop_watching()
            self.progress.hide()
            what = (
                f"{ended['status'].replace('_', ' ')}: {ended['reason']}"
                if ended is not None
                else "its process is gone (interrupted)"
            )
            self.statusBar().showMessage(f"The watched run {folder.name} ended, {what}.", 15000)
            self.runs.refresh()

    def _update_health(self) -> None:
        """Each node's mark from the newest gradient flow and activation numbers."""
        h = self.plots.history
        last = h.flow_last
        by_layer = layer_health(
            h.flow_layers,
            last.backprop if last is not None else None,
            last.forward if last is not None else None,
            h.latest_activations(),
        )
        self.canvas.set_health(node_health(by_layer))

    def _show_download(self, event: dict) -> None:
        done, total = event["done"], event["total"]
        self.progress.show()
        if done == 0 or not hasattr(self, "_download_started"):
            self._download_started = time.monotonic()
        megabytes = f"{done / 1e6:.1f}" + (f" of {total / 1e6:.1f}" if total else "") + " MB"
        self.progress.setRange(0, max(total, 1) if total else 0)  # 0..0: busy, size unknown
        self.progress.setValue(min(done, total) if total else 0)
        self.progress.setFormat(f"Downloading {event['file']}: {megabytes}")
        elapsed = time.monotonic() - self._download_started
        if total and done and elapsed > 0.5:
            left = (total - done) * elapsed / done
            self.eta.setText(f"ETA {_duration(left)}")

    def _show_progress(self, done: int, epoch: int, per_epoch: int) -> None:
        self.progress.setValue(done)
        self.progress.setFormat(
            f"{self._fold}epoch {epoch + 1} · step {done:,}/{self._total_steps:,}"
        )
        now = time.monotonic()
        # The rate is measured from the first steps on: the run's start (building the model,
        # the first step's one-off costs) made the first ETA 4x too long.
        if self._eta_origin is None:
            self._eta_origin = (now, done)
            self.eta.setText("ETA …")
            return
        elapsed, fresh = now - self._eta_origin[0], done - self._eta_origin[1]
        if fresh > 0 and elapsed > 1.0:
            remaining = (self._total_steps - done) * elapsed / fresh
            self.eta.setText(f"ETA {_duration(remaining)}")

    def _on_finished(self, summary: dict) -> None:
        self.progress.hide()
        if summary.get("status") == "failed":
            self.eta.setText("")
            QMessageBox.warning(self, "Training could not run", summary["error"])
            return
        best = summary.get("best", {}).get("metrics", {})
        acc = (
            f", best validation accuracy {best['val_accuracy']:.1%}"
            if "val_accuracy" in best
            else ""
        )
        if summary.get("experiment"):  # k-fold, bootstrap or leave-one-out: the spread
            from studio.training.experiment import headline as spread

            metric = "val_accuracy" if "val_accuracy" in summary["metrics"] else "val_loss"
            acc = ""
            if metric in summary["metrics"]:
                words = "accuracy" if metric == "val_accuracy" else "loss"
                # (the interval is in the Runs tab's tooltip)
                acc = f": validation {words} {spread(summary['metrics'], metric, False)}"
            # Short enough for the bar at 1366 px: what ran, then the spread.
            done = summary["runs_done"]
            reason = summary["title"] + (
                f" ({done} of {summary['runs_planned']} runs)"
                if done < summary["runs_planned"]
                else ""
            )
            summary = {**summary, "reason": reason}
        self.eta.setText(
            f"{summary['status'].replace('_', ' ')} in {_duration(summary['seconds'])}"
        )
        # How it ended and how long it took stay in the ETA label; the message says why
        # and how well, short enough for the bar at 1366 px (the whole of it is its tooltip).
        count = len(summary.get("findings", []))
        self.statusBar().showMessage(
            f"{summary['reason'][:1].upper()}{summary['reason'][1:]}{acc}; "
            f"{count} finding{'' if count == 1 else 's'}.",
            15000,
        )
        self.runs.refresh()
        if summary.get("run_folder") and summary.get("run"):
            # The Evaluation tab fills in the background; it does not take the focus.
            folder = Path(summary["run_folder"])
            self.evaluation.show_run(Run(folder.parent.parent, folder, summary["run"]))

    def evaluate_run(self, run: Run) -> None:
        """Asked for (Runs → Evaluate): evaluate it and show the Evaluation tab."""
        self.evaluation.show_run(run)
        _bring_forward(self.evaluation_dock)

    def _compare_runs(self, runs: list[Run]) -> None:
        """Two ticked runs: the first drawn as the main run, the second overlaid (dashed);
        one ticked run: overlaid on whatever the plots show now."""
        series = [(run, run.series()) for run in runs]
        series = [(run, data) for run, data in series if data]
        if not series:
            self.statusBar().showMessage("Those runs kept no per-step data to compare.", 6000)
            return
        if len(series) == 2:
            first_run, first = series.pop(0)
            self.plots.clear()
            # A fine-tuned run's phase changes come back too, marked as during training.
            self.plots.feed_events(replay(first, first_run.metrics()))
        run, data = series[0]
        # Named as the Runs list names it (its given name, else when it started); with its
        # validation points per epoch, from the run's metrics.
        row = next((r for r in self.runs.rows if r.get("id") == run.id), None)
        self.plots.set_comparison(
            replay(data, run.metrics()), run_label(row) if row else f"run {run.id}"
        )
        self.plots.refresh(force=True)
        _bring_forward(self.plots_dock)

    def export(self, run_path: Path | None = None) -> None:
        """Export the model; from a run's menu, with that run's weights chosen."""
        if not self.model.analysis.ok:
            self.check()
            return
        ExportDialog(self.model, self.runs_root, self, run_path=run_path or None).exec()

    # -- misc -------------------------------------------------------------------------
    def toggle_theme(self) -> None:
        dark = self.act_dark.isChecked()
        apply_theme(QApplication.instance(), dark)
        apply_plot_theme(dark)
        self.settings.setValue("dark", dark)
        for action, name in self._icons.items():
            action.setIcon(icon(name))
        self._on_state(self.training.state)  # the pause/resume icon follows its state

    def shortcuts(self) -> list[tuple[str, str]]:
        """(what, keys) for every menu action that has a shortcut."""
        rows = []
        for menu_action in self.menuBar().actions():
            for action in menu_action.menu().actions():
                keys = ", ".join(
                    dict.fromkeys(
                        k.toString(QKeySequence.SequenceFormat.NativeText)
                        for k in action.shortcuts()
                    )
                )
                if keys:
                    name = action.text().replace("&", "").replace("…", "")
                    if action in (self.act_undo, self.act_redo):
                        name = name.split()[0]  # not the last edit's name
                    rows.append((f"{menu_action.text().replace('&', '')} → {name}", keys))
        return rows

    def show_shortcuts(self) -> None:
        rows = "".join(
            f"<tr><td>{what}</td><td><b>{keys}</b></td></tr>" for what, keys in self.shortcuts()
        )
        QMessageBox.information(
            self,
            "Keyboard shortcuts",
            "<table cellspacing=6>"
            + rows
            + "<tr><td>Canvas → Fit to View</td><td><b>F</b></td></tr></table>",
        )

    def getting_started(self) -> None:
        QMessageBox.information(self, "Getting started", GETTING_STARTED)

    def about(self) -> None:
        QMessageBox.about(
            self,
            "About Studio",
            "<b>Studio</b><br>Build a network, watch it train, see why it does not learn.<br><br>"
            "PyTorch, PySide6 and pyqtgraph.",
        )

    def showEvent(self, event) -> None:
        super().showEvent(event)
        # Tabbed docks show their whole names ("Inspector", not "Ins…"), scrolling if needed.
        for bar in self.findChildren(QTabBar):
            bar.setElideMode(Qt.ElideNone)
            bar.setUsesScrollButtons(True)
        if self._first_layout:
            # First start: the plots take ~45% of the height (readable axes at 768 px), the
            # side docks a fixed share of the width; afterwards the saved layout rules.
            self._first_layout = False
            # After the show is laid out: sized in the show event itself, the docks keep
            # their size hints (the plots then got their bare minimum, ~320 px).
            QTimer.singleShot(0, self._first_dock_sizes)

    def _hide_stray_tab_bars(self) -> None:
        """Qt 6 leaves a copy of a dock group's tab bar where the first layout put it (at the
        window's size before it was sized), drawn over other docks (the Layers list). The
        real bar sits against the dock of its current tab; a bar that does not is hidden."""
        docks = {d.windowTitle(): d for d in self.findChildren(QDockWidget)}
        for bar in self.findChildren(QTabBar):
            if bar.parent() is not self or not bar.isVisible() or bar.count() == 0:
                continue
            dock = docks.get(bar.tabText(bar.currentIndex()))
            if dock is None or not dock.isVisible():
                continue
            near = dock.geometry().adjusted(-4, -4 - bar.height(), 4, 4 + bar.height())
            if not near.intersects(bar.geometry()):
                bar.hide()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        QTimer.singleShot(0, self._hide_stray_tab_bars)

    def _first_dock_sizes(self) -> None:
        # ~45% of the height, and no less than the plots' readable minimum (the size asked
        # for covers the dock's title and the Live plots/Runs tab bar too).
        chrome = self.plots_dock.height() - self.plots.height() + 30
        wanted = max(
            int(self.height() * 0.45), self.plots.splitter.minimumSizeHint().height() + chrome
        )
        self.resizeDocks([self.plots_dock], [min(wanted, int(self.height() * 0.6))], Qt.Vertical)
        self.resizeDocks([self.palette_dock], [max(180, self.width() // 8)], Qt.Horizontal)
        self.resizeDocks([self.inspector_dock], [max(300, self.width() // 5)], Qt.Horizontal)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._confirm_discard():
            event.ignore()
            return
        self.training.stop(wait=True)
        self._end_job(wait=True, closing=True)
        self.notices.close()
        # A preview still being drawn must not outlive its window (it reads the project).
        for job in self.findChildren(BackgroundJob):
            job.wait()
        self._save_settings()
        event.accept()


def _bring_forward(dock: QDockWidget) -> None:
    """Show a tabbed dock's tab unless it shows already: raising a dock that is in front
    repaints all of it anyway (every plot, ~30 ms)."""
    if not dock.widget().isVisible():
        dock.raise_()


GETTING_STARTED = """<h3>Getting started</h3>
<ol>
<li><b>Open an example</b> (File → Open Example) or start from File → New: an Input node.</li>
<li><b>Add layers</b>: drag them from the Layers palette onto the canvas (or double-click
one); connect an output port to an input port. Select a node to set its size, activation,
initializer, normalization and dropout in the Inspector.</li>
<li><b>Choose the data and training settings</b> in the Data and Training tabs.</li>
<li><b>Train</b> (Ctrl+Enter). The live plots show the loss, gradient norms per layer, the
gradient flow, weight histograms and activation health; the canvas marks layers where the
signal dies.</li>
<li><b>Read the findings</b>: each says what is wrong in plain words, and <i>Apply suggested
fix</i> changes the network in one undoable step. Train again and compare the runs (Runs
tab: tick two, Compare).</li>
<li><b>Export</b> (Ctrl+E) the trained model as ONNX (checked by onnxruntime, and saying
how to feed it), safetensors, or plain PyTorch code (model.py and train.py).</li>
</ol>
<p>Every edit can be undone (Ctrl+Z). The same project file trains from the command line:
<code>studio train project.json</code>.</p>"""


def example_text(path: Path) -> tuple[str, str]:
    """An example's menu entry ("digits_cnn — A small CNN on the digits") and its whole
    description."""
    import json

    try:
        description = str(json.loads(path.read_text(encoding="utf-8")).get("description", ""))
    except (OSError, ValueError):
        description = ""
    short = description if len(description) <= 60 else description[:58].rsplit(" ", 1)[0] + "…"
    return (f"{path.stem} — {short}" if short else path.stem), description


def shape_text(shape) -> str:
    """(10,) → "10 values"; (3, 32, 32) → "3×32×32" (studio.shapes_text.describe)."""
    return f"{shape[0]} values" if shape is not None and len(shape) == 1 else describe(shape)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
