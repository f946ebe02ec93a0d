"""Recurrent layers over sequences shaped steps × features."""

from __future__ import annotations

import torch
from torch import nn

from studio.errors import ShapeError
from studio.registry import LayerType
from studio.schema import Param
from studio.shapes_text import describe_kind


class Recurrent(nn.Module):
    """An LSTM/GRU that returns either every step's output or the final hidden state."""

    def __init__(self, rnn: nn.LSTM | nn.GRU, return_sequences: bool):
        super().__init__()
        self.rnn = rnn
        self.return_sequences = return_sequences

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, state = self.rnn(x)
        if self.return_sequences:
            return out
        hidden = state[0] if isinstance(state, tuple) else state
        if self.rnn.bidirectional:
            return torch.cat((hidden[-2], hidden[-1]), dim=1)
        return hidden[-1]


class _RNN(LayerType):
    group = "Recurrent"
    weighted = True
    block_options = True
    module = nn.LSTM
    gates = 4
    params = (
        Param("hidden_size", "int", 64, "Size of the hidden state.", 1, 4096, label="Units"),
        Param("num_layers", "int", 1, "Stacked recurrent layers.", 1, 8),
        Param(
            "bidirectional", "bool", False, "Also read the sequence backwards (doubles the output)."
        ),
        Param(
            "return_sequences",
            "bool",
            False,
            "On: output every step (steps×units) for another recurrent layer. Off: the last state only.",
        ),
    )

    def output_shape(self, params, inputs):
        (shape,) = inputs
        if len(shape) != 2:
            raise ShapeError(
                f"{self.name} needs a sequence (steps×features) but receives {describe_kind(shape)}; "
                "give the Input a shape like [steps, features]"
            )
        units = params["hidden_size"] * (2 if params["bidirectional"] else 1)
        return (shape[0], units) if params["return_sequences"] else (units,)

    def build(self, params, inputs):
        rnn = self.module(
            inputs[0][1],
            params["hidden_size"],
            num_layers=params["num_layers"],
            batch_first=True,
            bidirectional=params["bidirectional"],
        )
        return Recurrent(rnn, params["return_sequences"])

    def macs(self, params, inputs, output):
        steps, features = inputs[0]
        hidden, dirs = params["hidden_size"], 2 if params["bidirectional"] else 1
        total, width = 0, features
        for _ in range(params["num_layers"]):
            total += dirs * steps * self.gates * hidden * (width + hidden)
            width = hidden * dirs
        return total

    def key_params(self, params):
        text = f"{params['hidden_size']} units"
        if params["num_layers"] > 1:
            text += f" ×{params['num_layers']}"
        return text + (", bidirectional" if params["bidirectional"] else "")


class LSTM(_RNN):
    name = "LSTM"
    summary = "Long short-term memory: a recurrent layer with gates that keep long-range memory."
    module = nn.LSTM
    gates = 4


class GRU(_RNN):
    name = "GRU"
    summary = "Gated recurrent unit: a lighter LSTM with two gates."
    module = nn.GRU
    gates = 3


LAYERS = (LSTM, GRU)
