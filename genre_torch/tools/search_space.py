"""Search spaces: a YAML file of distributions over dotted `genre-torch fit` options, sampled by Optuna.

Each key is an option of `genre-torch fit` as on its command line without the dashes (optimizer.lr,
data.batch_size, model.backbone.hidden_dims, seed_everything, ...); each value says how it varies:

    optimizer.lr: {low: 2.0e-4, high: 3.0e-3, log: true}     # float: low/high with a decimal point (or type: float)
    data.batch_size: {low: 256, high: 2048, step: 256}    # int: integer low/high (step, log optional)
    model.arch: {choices: [mlp, plr_mlp]}                 # categorical; a grid (sweep) takes every choice
    model.backbone.hidden_dims: {choices: [[128, 128], [256, 256, 256]]}   # lists and dicts too
    model.backbone.sigma: {low: 0.005, high: 1.0, log: true, when: {model.arch: plr_mlp}}
    model.backbone.n_numeric: {value: 11, when: {model.arch: plr_mlp}}     # fixed (here: only for plr_mlp)

`when` makes an entry conditional on earlier entries (a value, or a list of accepted values). Optuna's
categorical choices must be None, bool, int, float or str, so a list or dict choice is stored in the study
under its JSON text ("[128, 128]") and mapped back when a trial is built.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from genre_torch.core.errors import GenreTorchError

KINDS = ("float", "int", "categorical", "fixed")
KEYS = {"type", "low", "high", "log", "step", "choices", "value", "when"}


def _label(choice: Any) -> Any:
    """The primitive Optuna stores for a choice: the choice itself, or the JSON text of a list or dict."""
    return choice if choice is None or isinstance(choice, (bool, int, float, str)) else json.dumps(choice)


@dataclass
class Param:
    """One entry of a search space: an option key, how it varies, and when it applies."""

    key: str
    kind: str
    spec: dict[str, Any]
    when: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution of this entry (categorical choices as their primitive labels)."""
        s = self.spec
        if self.kind == "categorical":
            return optuna.distributions.CategoricalDistribution([_label(c) for c in s["choices"]])
        cls = optuna.distributions.FloatDistribution if self.kind == "float" else optuna.distributions.IntDistribution
        step = s.get("step", None if self.kind == "float" else 1)
        return cls(s["low"], s["high"], log=bool(s.get("log", False)), step=step)

    def applies(self, values: dict[str, Any]) -> bool:
        """Whether the conditions of this entry hold for the values chosen so far."""
        return all(key in values and values[key] in accepted for key, accepted in self.when.items())

    def suggest(self, trial: optuna.Trial) -> Any:
        """Ask the trial for a value of this entry (a categorical label is mapped back to its choice)."""
        s = self.spec
        if self.kind == "categorical":
            return self.decode(trial.suggest_categorical(self.key, [_label(c) for c in s["choices"]]))
        if self.kind == "int":
            return trial.suggest_int(self.key, s["low"], s["high"], step=s.get("step", 1), log=bool(s.get("log")))
        return trial.suggest_float(self.key, s["low"], s["high"], step=s.get("step"), log=bool(s.get("log")))

    def decode(self, internal: Any) -> Any:
        """The option value of an Optuna parameter value (a categorical label back to its choice)."""
        if self.kind != "categorical":
            return internal
        return next(c for c in self.spec["choices"] if _label(c) == internal)


class SearchSpace:
    """An ordered list of Params read from a YAML file; suggests trials and enumerates grids."""

    def __init__(self, raw: Any, source: str = "search space") -> None:
        if not isinstance(raw, dict) or not raw:
            raise GenreTorchError(f"{source}: expected a mapping of fit options to distributions, got {raw!r}")
        self.raw, self.params = raw, []
        for key, spec in raw.items():
            self.params.append(self._param(str(key), spec, source))

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        """Read a search space YAML file; a missing or malformed file is a clear error."""
        if not Path(path).is_file():
            raise GenreTorchError(f"search space {path} does not exist; pass a YAML file (see configs/spaces/)")
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as e:
            raise GenreTorchError(f"search space {path} is not valid YAML ({type(e).__name__})") from None
        return cls(raw, str(path))

    def _param(self, key: str, spec: Any, source: str) -> Param:
        where = f"{source}: {key}"
        if not isinstance(spec, dict) or not spec or set(spec) - KEYS:
            raise GenreTorchError(f"{where}: expected a mapping with {sorted(KEYS)}, got {spec!r}")
        when = spec.get("when") or {}
        earlier = {p.key for p in self.params}
        if not isinstance(when, dict) or set(when) - earlier:
            raise GenreTorchError(f"{where}: `when` must name entries above it ({sorted(earlier)}), got {when!r}")
        when = {k: v if isinstance(v, list) else [v] for k, v in when.items()}
        kind = spec.get("type") or self._kind(spec)
        if kind not in KINDS:
            raise GenreTorchError(f"{where}: unknown type {kind!r}; known: {', '.join(KINDS)}")
        body = {k: v for k, v in spec.items() if k not in ("type", "when")}
        if kind == "categorical":
            choices = body.get("choices")
            labels = [_label(c) for c in choices] if isinstance(choices, list) else []
            if not labels or len(set(map(json.dumps, labels))) != len(labels):
                raise GenreTorchError(f"{where}: `choices` must be a non-empty list of distinct values")
        elif kind in ("float", "int"):
            numbers = [body.get(k) for k in ("low", "high")] + ([body["step"]] if "step" in body else [])
            if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
                raise GenreTorchError(f"{where}: low/high/step must be numbers (write 1.0e-3, not 1e-3), got {body}")
            if body["low"] > body["high"]:
                raise GenreTorchError(f"{where}: low {body['low']} is above high {body['high']}")
        elif "value" not in body:
            raise GenreTorchError(f"{where}: a fixed entry needs `value`")
        param = Param(key, kind, body, when)
        if kind in ("float", "int"):
            try:
                param.distribution  # noqa: B018 (Optuna checks log/step combinations)
            except ValueError as e:
                raise GenreTorchError(f"{where}: {e}") from None
            except ArithmeticError:  # Optuna divides the range by the step in decimal arithmetic
                raise GenreTorchError(f"{where}: step {body['step']} is too small for its range") from None
        return param

    @staticmethod
    def _kind(spec: dict[str, Any]) -> str:
        if "choices" in spec:
            return "categorical"
        if "value" in spec:
            return "fixed"
        if isinstance(spec.get("low"), int) and isinstance(spec.get("high"), int):
            return "int"
        return "float"

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The option values of a trial: each applicable entry suggested (or fixed) in file order."""
        values: dict[str, Any] = {}
        for p in self.params:
            if p.applies(values):
                values[p.key] = p.spec["value"] if p.kind == "fixed" else p.suggest(trial)
        return values

    def options(self, params: dict[str, Any]) -> dict[str, Any]:
        """The option values of stored Optuna parameters (e.g. the best trial's), fixed entries included."""
        values: dict[str, Any] = {}
        for p in self.params:
            if p.applies(values):
                values[p.key] = p.spec["value"] if p.kind == "fixed" else p.decode(params[p.key])
        return values

    def params_of(self, values: dict[str, Any]) -> dict[str, Any] | None:
        """The Optuna parameters of a trial with these option values (e.g. a base config's), or None when one of
        them lies outside the space."""
        params: dict[str, Any] = {}
        chosen: dict[str, Any] = {}
        for p in self.params:
            if not p.applies(chosen):
                continue
            if p.kind == "fixed":
                chosen[p.key] = p.spec["value"]
                continue
            value = values.get(p.key)
            if p.kind == "categorical":
                if _label(value) not in [_label(c) for c in p.spec["choices"]]:
                    return None
                params[p.key] = _label(value)
            elif not self._in_range(p, value):
                return None
            else:
                params[p.key] = value
            chosen[p.key] = value
        return params

    @staticmethod
    def _in_range(p: Param, value: Any) -> bool:
        """Whether a number is a value of a float or int entry (within its bounds, on its step)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (p.kind == "int" and value != int(value)):
            return False
        low, high, step = p.spec["low"], p.spec["high"], p.spec.get("step", None if p.kind == "float" else 1)
        steps = (value - low) / step if step else 0.0
        return low <= value <= high and abs(steps - round(steps)) < 1e-9

    def first(self) -> dict[str, Any]:
        """Option values of the lowest bound or first choice of every entry (to check the options early)."""
        values: dict[str, Any] = {}
        for p in self.params:
            if p.applies(values):
                values[p.key] = (
                    p.spec["value"] if p.kind == "fixed" else p.spec.get("low", (p.spec.get("choices") or [None])[0])
                )
        return values

    def cover(self) -> list[dict[str, Any]]:
        """Option values of few cells that together give every entry each of its values (a range: low and high)."""
        ends = {}
        for p in self.params:
            spec = p.spec
            if p.kind in ("float", "int"):
                spec = {"choices": list(dict.fromkeys([spec["low"], spec["high"]]))}
            ends[p.key] = {**spec, **({"when": self.raw[p.key]["when"]} if p.when else {})}
        corners = SearchSpace(ends)
        return covering([corners.options(params) for params in corners.grid()])

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of choices (the Optuna parameters of each cell); a grid has only choices."""
        ranged = [p.key for p in self.params if p.kind in ("float", "int")]
        if ranged:
            raise GenreTorchError(f"a grid needs `choices` (or `value`) for every entry; {ranged} are ranges")
        cells: list[tuple[dict[str, Any], dict[str, Any]]] = [({}, {})]  # (optuna params, option values)
        for p in self.params:
            grown = []
            for params, values in cells:
                if not p.applies(values):
                    grown.append((params, values))
                elif p.kind == "fixed":
                    grown.append((params, {**values, p.key: p.spec["value"]}))
                else:
                    for choice in p.spec["choices"]:
                        grown.append(({**params, p.key: _label(choice)}, {**values, p.key: choice}))
            cells = grown
        return [params for params, _ in cells]


def covering(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells (option values) that add a value of some option not seen in the cells before them."""
    kept, seen = [], set()
    for values in cells:
        new = {(k, json.dumps(v)) for k, v in values.items()} - seen
        if new:
            kept.append(values)
            seen |= new
    return kept


def option_args(values: dict[str, Any]) -> list[str]:
    """Command-line arguments of option values: ["--optimizer.lr", "0.001", "--data.batch_size", "512"]."""
    return list(
        itertools.chain.from_iterable((f"--{k}", v if isinstance(v, str) else json.dumps(v)) for k, v in values.items())
    )
