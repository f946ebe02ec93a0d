"""Fixtures shared by the core tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from support import EXAMPLES


@pytest.fixture(scope="session", autouse=True)
def offline_torch_hub(tmp_path_factory) -> Path:
    """Tests never download: torch hub's cache is a folder of this session (not the user's)
    and a download fails as it does offline. Returns the folder weight files go in."""
    patch = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("torch_home")
    patch.setenv("TORCH_HOME", str(home))
    patch.setattr(torch.hub, "_hub_dir", None)  # an earlier set_dir would win over the env

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError(f"tests never download ({url})")

    patch.setattr(torch.hub, "download_url_to_file", offline)
    patch.setattr(urllib.request, "urlopen", offline)  # studio.download's way in
    yield home / "hub" / "checkpoints"
    patch.undo()


def place_imagenet_weights(project_file: Path) -> None:
    """For every ImageNet backbone in a project, put a generated weights file where torch
    hub's cache keeps the real one, so the real loading path runs offline."""
    from studio.pretrained import hub_file
    from studio.transfer.architectures import SPECS, default_weights
    from studio.vision import torchvision

    for node in json.loads(project_file.read_text())["network"]["nodes"]:
        if node["type"] in SPECS and node.get("params", {}).get("weights") == "imagenet":
            spec = SPECS[node["type"]]
            path = hub_file(default_weights(spec))
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(1)
                    whole = torchvision().models.get_model(spec.model, weights=None)
                    torch.save(whole.state_dict(), path)  # as torchvision publishes it


@pytest.fixture(params=EXAMPLES, ids=[p.stem for p in EXAMPLES])
def example_path(request, offline_torch_hub) -> Path:
    place_imagenet_weights(request.param)
    return request.param
