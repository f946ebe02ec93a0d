"""An installable studio (issue 14): the wheel carries the example projects and icons, its
`studio` command works outside the repository, and the desktop entry comes and goes."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support import ROOT

from studio import desktop
from studio.cli import main


def test_every_package_folder_is_listed_for_the_wheel():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("studio", "ui")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert listed == on_disk | {"studio.resources"}


@pytest.mark.slow
def test_the_built_wheel_installs_and_checks_a_bundled_example_outside_the_repository(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = wheels.glob("studio-*.whl")
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    # The pinned torch and the other dependencies: reused from this environment, behind
    # the wheel's own files (a plain path entry: this environment's editable studio is not
    # imported).
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    (site / "reuse.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    where = subprocess.check_output(
        [
            str(python),
            "-c",
            "import studio, studio.bundled as b; print(studio.__file__); print(b.EXAMPLES / 'digits_mlp.json')",
        ],
        cwd=elsewhere,
        env=clean,
        text=True,
    ).split()
    assert where[0].startswith(str(site)) and where[1].startswith(str(site))
    check = subprocess.run(
        [str(env / "bin" / "studio"), "check", where[1]],
        cwd=elsewhere,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "digits_mlp" in check.stdout
    assert (env / "bin" / "studio-window").is_file()  # the GUI script
    icons = list((Path(where[1]).parents[1] / "icons").glob("*.svg"))
    assert any(p.name == "app.svg" for p in icons)


def test_install_desktop_writes_a_menu_entry_and_removes_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert main(["install-desktop"]) == 0
    entry = tmp_path / "applications" / "studio.desktop"
    icon = tmp_path / "icons" / "hicolor" / "scalable" / "apps" / "studio.svg"
    text = entry.read_text()
    assert text.startswith("[Desktop Entry]\n") and "Type=Application" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    assert exec_line.endswith(" %f") and (
        "studio-window" in exec_line or "-m studio launch" in exec_line
    )
    assert "Icon=studio" in text and icon.read_text().startswith("<svg")
    assert desktop.ICON_COLOUR in icon.read_text()
    assert main(["install-desktop", "--remove"]) == 0
    assert not entry.exists() and not icon.exists()
    assert main(["install-desktop", "--remove"]) == 0
    assert "Nothing to remove" in capsys.readouterr().out


def test_a_menu_folder_that_cannot_be_written_is_one_sentence(tmp_path, monkeypatch, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocked))
    assert main(["install-desktop"]) != 0
    err = capsys.readouterr().err
    assert "Cannot write the menu entry" in err and "Traceback" not in err


def test_a_relative_xdg_data_home_is_ignored_as_the_spec_says(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", "relative/share")
    monkeypatch.chdir(tmp_path)
    assert main(["install-desktop"]) == 0
    assert (tmp_path / "home" / ".local" / "share" / "applications" / "studio.desktop").is_file()
    assert not (tmp_path / "relative").exists()
