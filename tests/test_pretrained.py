"""Pretrained weights: the ImageNet cache, local files, refused pickles, key reports, runs."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from support import EXAMPLES, chain, project_of

from studio.analysis import analyze
from studio.builder import build_model
from studio.errors import StudioError
from studio.projectfile import load_project
from studio.training.session import train
from studio.transfer.architectures import SPECS
from studio.vision import torchvision

RESNET18 = "resnet18-f37072fd.pth"  # the file name in torchvision's DEFAULT weights URL


def project(size: int = 32, **params):
    params.setdefault("freeze_point", 0)
    return project_of(
        chain(
            {"id": "image", "type": "Input", "params": {"shape": [3, size, size]}},
            {"id": "base", "type": "ResNet18", "params": params},
            {"id": "head", "type": "Output", "params": {"units": 3}},
        )
    )


def random_resnet18() -> dict[str, torch.Tensor]:
    """A full torchvision ResNet-18 state dict (with its 1000-class fc), random values."""
    torch.manual_seed(123)
    return torchvision().models.resnet18(weights=None).state_dict()


def loaded(model) -> dict[str, torch.Tensor]:
    return model.layers["base"].layer.net.state_dict()


def assert_same_weights(model, state: dict[str, torch.Tensor]) -> None:
    own = loaded(model)
    for key, value in own.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, state[key]), key


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # an earlier set_dir would win over the env

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return home / "hub" / "checkpoints"


def test_missing_imagenet_file_offline_says_where_to_put_it(torch_home):
    with pytest.raises(StudioError) as err:
        build_model(project(weights="imagenet"))
    message = str(err.value)
    url = torchvision().models.ResNet18_Weights.DEFAULT.url
    assert "Node 'base' (ResNet18)" in message
    assert RESNET18 in message and str(torch_home) in message and url in message
    assert not (torch_home / RESNET18).exists()  # no half-written file left behind


def test_imagenet_file_in_the_hub_cache_is_loaded(torch_home):
    state = random_resnet18()
    torch_home.mkdir(parents=True)
    torch.save(state, torch_home / RESNET18)
    model = build_model(project(weights="imagenet"))
    assert_same_weights(model, state)
    report = model.weights_reports["base"]
    assert "Node 'base'" in report and "classifier replaced" in report and "fc.weight" in report
    assert "missing" not in report and "another shape" not in report
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_analysis_never_reads_weight_files(torch_home):
    # Offline with an empty cache: building would fail, the analysis must not even try.
    assert analyze(project(weights="imagenet").network).ok


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_file_relative_to_the_project_folder(tmp_path, monkeypatch, suffix):
    state = random_resnet18()
    (tmp_path / "weights").mkdir()
    path = tmp_path / "weights" / f"mine{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({f"module.{k}": v for k, v in state.items()}, path)  # a DataParallel save
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    proj = project(weights="file", weights_file=f"weights/mine{suffix}")
    model = build_model(proj, base=tmp_path)
    assert_same_weights(model, state)
    assert f"mine{suffix}" in model.weights_reports["base"]
    with pytest.raises(StudioError, match="does not exist"):
        build_model(proj)  # relative to the current folder, where it is not


def test_a_state_dict_saved_from_the_backbone_itself_loads(tmp_path):
    first = build_model(project(weights="none"), seed=7)
    torch.save(first.layers["base"].layer.state_dict(), tmp_path / "base.pt")  # keys "net.…"
    second = build_model(project(weights="file", weights_file="base.pt"), seed=8, base=tmp_path)
    assert_same_weights(second, loaded(first))
    assert "classifier replaced" not in second.weights_reports["base"]


class Malicious:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"conv1.weight": Malicious(marker)}, tmp_path / "evil.pth")
    with pytest.raises(StudioError) as err:
        build_model(project(weights="file", weights_file="evil.pth"), base=tmp_path)
    assert "Node 'base'" in str(err.value) and "evil.pth" in str(err.value)
    assert "run code" in str(err.value)
    assert not marker.exists()


def test_mismatched_keys_are_reported(tmp_path):
    state = random_resnet18()
    del state["layer4.1.bn2.bias"]
    state["extra.weight"] = torch.zeros(3)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, tmp_path / "odd.pth")
    model = build_model(project(weights="file", weights_file="odd.pth"), base=tmp_path)
    report = model.weights_reports["base"]
    assert "1 missing" in report and "layer4.1.bn2.bias" in report
    assert "1 in the file that the network lacks" in report and "extra.weight" in report
    assert "1 of another shape" in report and "layer1.0.conv1.weight" in report
    net = loaded(model)
    assert torch.equal(net["layer4.0.conv1.weight"], state["layer4.0.conv1.weight"])
    assert not torch.equal(net["layer1.0.conv1.weight"][:, :, :1, :1], torch.zeros(64, 64, 1, 1))


def test_a_file_where_nothing_fits_is_an_error(tmp_path):
    torch.save({"encoder.w": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(StudioError, match=r"Node 'base'.*none of the 1 tensors.*other\.pth"):
        build_model(project(weights="file", weights_file="other.pth"), base=tmp_path)


def test_googlenet_file_with_auxiliary_heads_drops_them_as_expected(tmp_path):
    spec = SPECS["GoogLeNet"]
    with torch.device("meta"):
        full = torchvision().models.googlenet(weights=None, aux_logits=True, init_weights=False)
    state = {k: torch.zeros(v.shape) for k, v in full.state_dict().items()}
    save_file(state, str(tmp_path / "g.safetensors"))
    net = chain(
        {"id": "image", "type": "Input", "params": {"shape": [3, spec.min_size, spec.min_size]}},
        {
            "id": "base",
            "type": "GoogLeNet",
            "params": {"weights": "file", "weights_file": "g.safetensors"},
        },
        {"id": "head", "type": "Output", "params": {"units": 3}},
    )
    report = build_model(project_of(net), base=tmp_path).weights_reports["base"]
    assert "aux1." in report and "lacks" not in report and "missing" not in report


# -- a backbone from an earlier run ------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    cnn = next(p for p in EXAMPLES if p.stem == "digits_cnn")
    proj = load_project(cnn, ["training.epochs=1", "training.monitors.enabled=false"])
    outcome = train(proj, runs_root=root / "runs", base=root)
    return root, outcome.run


def run_project(run_folder: str, **params):
    params.setdefault("run", run_folder)
    return project_of(
        chain(
            {"id": "image", "type": "Input", "params": {"shape": [1, 8, 8]}},
            {"id": "earlier", "type": "RunBackbone", "params": params},
            {"id": "head", "type": "Output", "params": {"units": 4}},
        )
    )


def test_run_backbone_reuses_the_runs_network_and_weights(digits_run):
    root, run = digits_run
    relative = str(run.path.relative_to(root))
    proj = run_project(relative, checkpoint="last", freeze_point=2)
    model = build_model(proj, base=root)
    block = model.layers["earlier"].layer
    assert block.stage_names == ["conv1", "conv2", "conv3", "dense"]
    saved = load_file(str(run.path / "checkpoints" / "last.safetensors"))
    own = block.net.state_dict()
    assert "layers.classes.layer.weight" not in own  # the old head is gone
    for key, value in own.items():
        assert torch.equal(value, saved[key]), key
    report = model.weights_reports["earlier"]
    assert "head replaced" in report and "last.safetensors" in report
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    unfrozen = sum(p.numel() for s in block.stage_modules()[2:] for p in s.parameters())
    assert trainable == unfrozen + sum(p.numel() for p in model.layers["head"].parameters())


def test_run_backbone_analysis(digits_run, monkeypatch):
    root, run = digits_run
    monkeypatch.chdir(root)  # the relative run path resolves against the current folder
    network = run_project(str(run.path.relative_to(root))).network
    analysis = analyze(network)
    assert analysis.ok, analysis.problems
    info = analysis.layers["earlier"]
    features = load_project(run.path / "project.json")
    dense = features.network.nodes["dense"].params["out_features"]
    assert info.output_shape == (dense,)
    assert [name for name, _, _ in info.stages] == ["conv1", "conv2", "conv3", "dense"]
    assert info.frozen == 0 and info.params > 0


def test_run_backbone_problems_name_the_node(digits_run, tmp_path):
    root, run = digits_run
    missing = analyze(run_project(str(tmp_path / "nowhere")).network).problem_for("earlier")
    assert missing and "Node 'earlier'" in missing and "not a run folder" in missing
    wrong_input = chain(
        {"id": "image", "type": "Input", "params": {"shape": [3, 8, 8]}},
        {"id": "earlier", "type": "RunBackbone", "params": {"run": str(run.path)}},
        {"id": "head", "type": "Output", "params": {"units": 4}},
    )
    problem = analyze(wrong_input).problem_for("earlier")
    assert problem and "[1, 8, 8]" in problem
    too_far = analyze(run_project(str(run.path), freeze_point=9).network).problem_for("earlier")
    assert too_far and "at most 4" in too_far


def full_and_partial_weights(tmp_path):
    """full.pth and partial.pth (one tensor short) for a ResNet-18 in `tmp_path`, and a
    tiny 3-class image data set to train it on."""
    from studio.data.prepare import PreparedData, Split

    full = random_resnet18()
    partial = dict(full)
    del partial["layer4.1.bn2.bias"]
    torch.save(full, tmp_path / "full.pth")
    torch.save(partial, tmp_path / "partial.pth")
    x, y = torch.rand(12, 3, 32, 32), torch.arange(12) % 3
    splits = Split(x[:8], y[:8]), Split(x[8:], y[8:]), Split(x[:0], y[:0])
    return PreparedData(*splits, ["a", "b", "c"], (3, 32, 32), "")


def test_training_announces_what_was_loaded_and_a_partial_load_is_a_finding(tmp_path):
    """The CLI and the window hear the same finding: the diagnosis raises it, not a view."""
    from studio.training.session import train

    data = full_and_partial_weights(tmp_path)
    seen, found = {}, {}
    for name in ("full", "partial"):
        p = project(weights="file", weights_file=f"{name}.pth")
        p.training.update(epochs=1, batch_size=8)
        heard = []
        outcome = train(p, runs_root=None, base=tmp_path, data=data, listeners=[heard.append])
        (seen[name],) = [e for e in heard if e["type"] == "pretrained"]
        found[name] = [f for f in outcome.findings if f.kind == "weights_mismatch"]
        announced = [e for e in heard if e["type"] == "finding" and e["kind"] == "weights_mismatch"]
        assert len(announced) == len(found[name])
    assert seen["full"]["node"] == "base" and not seen["full"]["mismatched"]
    assert "classifier replaced" in seen["full"]["report"]
    assert seen["partial"]["mismatched"] and "1 missing" in seen["partial"]["report"]
    assert not found["full"]
    (finding,) = found["partial"]
    assert finding.layers == ["base"] and "1 missing" in finding.message


class _Served:
    """What urlopen returns, for bytes served from memory."""

    def __init__(self, payload: bytes):
        import io

        self.body = io.BytesIO(payload)
        self.headers = {"Content-Length": str(len(payload))}

    def read(self, n=-1):
        return self.body.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _serve(monkeypatch, payload: bytes) -> list[str]:
    import urllib.request

    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        return _Served(payload)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def test_a_download_reports_progress_checks_the_hash_and_lands_whole(tmp_path, monkeypatch):
    import hashlib

    from studio import download

    monkeypatch.setattr(download, "CHUNK", 1000)
    payload = os.urandom(4500)
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    _serve(monkeypatch, payload)
    seen = []
    path = download.download(
        "https://x/m.pth", tmp_path / f"m-{prefix}.pth", lambda d, t: seen.append((d, t))
    )
    assert path.read_bytes() == payload
    assert seen[0] == (0, 4500) and seen[-1] == (4500, 4500) and len(seen) == 6
    with pytest.raises(download.DownloadError, match="not 00000000"):
        download.download("https://x/m.pth", tmp_path / "other-00000000.pth")
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing half-written


def test_training_downloads_missing_imagenet_weights_with_progress_events(tmp_path, monkeypatch):
    import io

    from studio.data.prepare import PreparedData, Split
    from studio.training.engine import Trainer

    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    state = random_resnet18()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    from studio import download

    monkeypatch.setattr(download, "HASH_IN_NAME", __import__("re").compile(r"^$"))  # any bytes
    monkeypatch.setattr(download, "CHUNK", 4 << 20)
    asked = _serve(monkeypatch, buffer.getvalue())
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8) % 3
    data = PreparedData(
        Split(x, y), Split(x[:4], y[:4]), Split(x[:0], y[:0]), ["a", "b", "c"], (3, 32, 32), ""
    )
    p = project(weights="imagenet")
    p.training.update(epochs=1, batch_size=8)
    events = []
    trainer = Trainer(p, data=data, listeners=[events.append])
    assert asked == [torchvision().models.ResNet18_Weights.DEFAULT.url]
    downloads = [e for e in events if e["type"] == "download"]
    assert downloads[0]["done"] == 0 and downloads[0]["file"] == RESNET18
    assert downloads[-1]["done"] == downloads[-1]["total"] == len(buffer.getvalue())
    assert (home / "hub" / "checkpoints" / RESNET18).is_file()
    assert_same_weights(trainer.model, state)
