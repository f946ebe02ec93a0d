"""Export: ONNX files that onnxruntime runs at other batch sizes, safetensors weights,
and weight files loaded safely."""

from __future__ import annotations

import pickle

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from support import EXAMPLES

from studio.builder import build_model
from studio.errors import ExportError
from studio.export import export_onnx, export_safetensors
from studio.projectfile import load_project
from studio.weights import WeightsError, load_weights, read_state_dict

MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")


def test_every_example_exports_and_onnxruntime_matches_torch(example_path, tmp_path):
    model = build_model(load_project(example_path))
    report = export_onnx(model, tmp_path / "m.onnx")
    assert report.ok and report.max_abs_diff < 1e-4
    assert report.checked_batches == [1, 5]
    assert not list(tmp_path.glob("*.data")), "weights stay inside the single .onnx file"
    # Independently of the report: another batch size, compared here.
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(7, *model.input_shape)
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    (got,) = session.run(None, {"input": x.numpy()})
    assert np.abs(got - expected).max() < 1e-4


def test_an_older_opset_is_written_as_asked(tmp_path):
    report = export_onnx(build_model(load_project(MLP)), tmp_path / "m.onnx", opset=13)
    assert report.ok and report.exporter == "torchscript"
    assert onnx.load(str(tmp_path / "m.onnx")).opset_import[0].version == 13


def test_a_static_batch_export_is_checked_at_its_own_batch(tmp_path):
    report = export_onnx(build_model(load_project(MLP)), tmp_path / "m.onnx", dynamic_batch=False)
    assert report.ok and report.checked_batches == [2]
    dims = onnx.load(str(tmp_path / "m.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 2


def test_export_keeps_the_model_in_training_mode_if_it_was(tmp_path):
    model = build_model(load_project(MLP)).train()
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training


@pytest.mark.parametrize("opset", [5, 99])
def test_an_unsupported_opset_is_refused_in_one_sentence(opset, tmp_path):
    with pytest.raises(ExportError, match=f"Opset {opset} is not supported"):
        export_onnx(build_model(load_project(MLP)), tmp_path / "m.onnx", opset=opset)


def test_an_operation_that_cannot_be_exported_gives_a_clear_error(tmp_path):
    class Unexportable(torch.nn.Module):
        input_shape = (4,)

        def forward(self, x):
            # Data-dependent Python control flow cannot be traced into a graph.
            return x * 2 if x.sum().item() > 0 else x

    with pytest.raises(ExportError, match="could not be exported to ONNX"):
        export_onnx(Unexportable(), tmp_path / "m.onnx")


def test_export_into_a_missing_folder_names_it(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(build_model(load_project(MLP)), tmp_path / "no" / "m.onnx")


def test_safetensors_round_trip_restores_the_weights(tmp_path):
    project = load_project(MLP)
    trained = build_model(project, seed=1)
    export_safetensors(trained, tmp_path / "w.safetensors")
    fresh = build_model(project, seed=2)
    load_weights(fresh, tmp_path / "w.safetensors")
    for key, value in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


def test_weights_for_another_network_are_reported_not_ignored(tmp_path):
    export_safetensors(build_model(load_project(MLP)), tmp_path / "w.safetensors")
    other = build_model(load_project(MLP, ["network.nodes.hidden1.params.out_features=16"]))
    with pytest.raises(
        WeightsError, match=r"of another shape \(e\.g\. layers\.hidden1\.layer\.weight"
    ):
        load_weights(other, tmp_path / "w.safetensors")


class _Exploit:
    def __reduce__(self):
        return (print, ("this pickle ran code",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"weight": _Exploit()}, f)
    with pytest.raises(WeightsError, match="refused"):
        read_state_dict(path)
    assert "this pickle ran code" not in capsys.readouterr().out


def test_a_plain_torch_state_dict_loads(tmp_path):
    model = build_model(load_project(MLP))
    torch.save(model.state_dict(), tmp_path / "w.pth")
    assert set(read_state_dict(tmp_path / "w.pth")) == set(model.state_dict())
