"""Packed ensembles: K independently initialised copies of any backbone in one module (`--model.ensemble_size K`).

The members' parameters are stored stacked, one tensor of shape (K, ...) per parameter of the backbone, and one
forward pass runs every member at once (`torch.func.functional_call` under `torch.func.vmap` over the stacked
parameters). A backbone whose forward cannot run under vmap (data-dependent Python control flow, such as RealMLP's
first-batch initialisation) runs as a loop over its members for the calls where vmap fails. The tracers of ONNX /
TorchScript export cannot record functional_call: export traces `unpack()`, the same members as plain modules
in a loop (the same numbers). This is not a Backbone: it wraps one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from genre_torch.core.errors import GenreTorchError

LOOP_AFTER = 2  # consecutive calls vmap could not run before the ensemble stops trying it


def check_size(ensemble_size: int) -> int:
    """The number of members must be a positive integer."""
    if not isinstance(ensemble_size, int) or isinstance(ensemble_size, bool) or ensemble_size < 1:
        raise GenreTorchError(f"ensemble_size must be a positive integer (1: a single network), got {ensemble_size!r}")
    return ensemble_size


def build_backbone(
    make: Callable[..., nn.Module], num_features: int, num_classes: int, n_numeric: int | None, ensemble_size: int
) -> torch.nn.Module:
    """The backbone (n_numeric filled in where given), or a packed ensemble of ensemble_size of them."""
    check_size(ensemble_size)
    extra = {"n_numeric": n_numeric} if n_numeric is not None else {}
    if ensemble_size == 1:
        return make(num_features, num_classes, **extra)
    members = [make(num_features, num_classes, **extra) for _ in range(ensemble_size)]  # each its own initialisation
    return (EmbeddingPackedEnsemble if hasattr(members[0], "embed") else PackedEnsemble)(members)


class PackedEnsemble(nn.Module):
    """K members of one architecture with stacked parameters; forward returns log of the mean member probability.

    Training (GenreClassifier): `forward_members(x)` gives the (batch, K, classes) logits and the criterion is the mean
    of the members' losses on the same batch, so every member is trained on its own loss, independently of the
    others (the mean scales each member's gradient by 1/K: no change under Adam-like optimisers, a K-times smaller
    step under plain SGD). Evaluation, prediction and export: `forward(x)` = log of the mean of the members'
    softmax probabilities, valid logits whose softmax is the ensemble's probability. A member that is itself an
    ensemble (TabM: `forward_members`) contributes all of its own members.

    State: `stacked` has the backbone's structure, every parameter and buffer with a leading dimension K (checkpoint
    keys `backbone.stacked.NAME`); the backbone's `parameter_groups()` (learning-rate factors) apply to the stacked
    parameters.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        """Pack independently initialised members of one architecture: their weights are stacked, and the members
        themselves are kept without weights (moved to the meta device) for their structure and Python state."""
        super().__init__()
        self.size = check_size(len(members))
        self.inner = hasattr(members[0], "forward_members")
        names = {id(p): n for n, p in members[0].named_parameters()}
        groups = members[0].parameter_groups() if hasattr(members[0], "parameter_groups") else None
        self._groups = None  # the backbone's groups by parameter name
        if groups is not None:
            self._groups = [
                {**{k: v for k, v in g.items() if k != "params"}, "names": [names[id(p)] for p in g["params"]]}
                for g in groups
            ]
        self.stacked = copy.deepcopy(members[0])
        for name, _ in list(members[0].named_parameters()):
            stack = torch.stack([m.get_parameter(name).detach() for m in members])
            _set(self.stacked, name, nn.Parameter(stack))
        for name, _ in list(members[0].named_buffers()):
            _set(self.stacked, name, torch.stack([m.get_buffer(name) for m in members]))
        # shells: the members' structure and Python state, without weights (functional_call supplies them)
        self._shells = [_Members(m.to("meta"), self.inner) for m in members]
        self._failures = 0

    def train(self, mode: bool = True) -> PackedEnsemble:
        """Train / eval mode for the stacked state and every member."""
        super().train(mode)
        for shell in self._shells:
            shell.train(mode)
        return self

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The backbone's own optimiser groups (learning-rate factors), over the stacked parameters; else one group."""
        if self._groups is None:
            return [{"params": list(self.stacked.parameters())}]
        groups = []
        for group in self._groups:
            settings = {k: v for k, v in group.items() if k != "names"}
            groups.append({**settings, "params": [self.stacked.get_parameter(n) for n in group["names"]]})
        return groups

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        return dict(self.stacked.named_parameters()), dict(self.stacked.named_buffers())

    def _loop(self, x: torch.Tensor, embed: bool = False) -> torch.Tensor:
        params, buffers = self._state()
        outs = []
        for i, shell in enumerate(self._shells):
            state = {f"net.{n}": t[i] for n, t in (params | buffers).items()}
            outs.append(functional_call(shell, state, (x,), {"embed": embed}, strict=True))
        return torch.stack(outs, dim=1)

    def forward_members(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every member: (batch, K, classes), or (batch, K * k, classes) for members that are ensembles."""
        out = self._run(x)
        return out.flatten(1, 2) if self.inner else out

    def _run(self, x: torch.Tensor, embed: bool = False) -> torch.Tensor:
        """Every member's output, (batch, K, ...): under vmap, or in a loop where vmap cannot run the backbone."""
        for shell in self._shells:  # Lightning restores train mode by setting each registered module's flag
            if shell.training != self.training:  # the shells are not registered: follow this module's flag
                shell.train(self.training)
        if self._failures >= LOOP_AFTER:
            return self._loop(x, embed)
        try:
            out = self._vmap(x, embed)
        except RuntimeError:  # data-dependent control flow in the backbone: a loop over the members instead
            self._failures += 1
            return self._loop(x, embed)
        self._failures = 0
        return out

    def _vmap(self, x: torch.Tensor, embed: bool = False) -> torch.Tensor:
        shell = self._shells[0]
        params, buffers = self._state()
        state = {f"net.{n}": t for n, t in (params | buffers).items()}

        def one(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(shell, state, (x,), {"embed": embed}, strict=True)

        out = vmap(one, in_dims=(0, None), randomness="different")(state, x)
        return out.movedim(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the mean member probability (valid logits) of shape (batch, classes)."""
        return log_mean_probability(self.forward_members(x))

    def unpack(self) -> UnpackedEnsemble:
        """The members as separate modules with their own weights, run in a loop: the same function, traceable."""
        params, buffers = self._state()
        device = next(iter(params.values())).device
        members = []
        for i, shell in enumerate(self._shells):
            net = copy.deepcopy(shell.net).to_empty(device=device)
            net.load_state_dict({n: t[i].detach().clone() for n, t in (params | buffers).items()})
            members.append(net)
        return UnpackedEnsemble(members, self.inner).train(self.training)


class EmbeddingPackedEnsemble(PackedEnsemble):
    """A packed ensemble of a backbone with `embed`: the members' representations side by side."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's embed(x), concatenated: (batch, K * d)."""
        return self._run(x, embed=True).flatten(1)


class UnpackedEnsemble(nn.Module):
    """Members as a ModuleList, run one after another; forward returns log of the mean member probability."""

    def __init__(self, members: list[nn.Module], inner: bool) -> None:
        super().__init__()
        self.members, self.inner = nn.ModuleList(members), inner

    def forward_members(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every member: (batch, K, classes), or (batch, K * k, classes) for members that are ensembles."""
        out = torch.stack([m.forward_members(x) if self.inner else m(x) for m in self.members], dim=1)
        return out.flatten(1, 2) if self.inner else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the mean member probability (valid logits) of shape (batch, classes)."""
        return log_mean_probability(self.forward_members(x))


def log_mean_probability(logits: torch.Tensor) -> torch.Tensor:
    """(batch, members, classes) logits -> log of the mean of the members' softmax probabilities (batch, classes)."""
    return F.log_softmax(logits, dim=-1).logsumexp(dim=1) - math.log(logits.shape[1])


class _Members(nn.Module):
    """A member's structure, called as the ensemble calls it: its logits, or its own members' (forward_members)."""

    def __init__(self, net: nn.Module, inner: bool) -> None:
        super().__init__()
        self.net, self.inner = net, inner

    def forward(self, x: torch.Tensor, embed: bool = False) -> torch.Tensor:
        """(batch, classes), (batch, k, classes) for an inner ensemble, or the member's embed(x)."""
        if embed:
            return self.net.embed(x)
        return self.net.forward_members(x) if self.inner else self.net(x)


def _set(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """Replace the parameter or buffer NAME (dotted) of a module."""
    owner, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(owner) if owner else module, leaf, value)
