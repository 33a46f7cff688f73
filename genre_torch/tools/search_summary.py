"""Markdown summary of a sweep: the best configuration per value of each grid option, and the seed spread."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from typing import Any

import optuna

from genre_torch.tools.search_space import SearchSpace

SEED = "seed_everything"


def columns(options: dict[str, Any], varied: list[str]) -> dict[str, Any]:
    """Short table columns of a cell's varied options; hidden_dims [w] * d becomes depth d and width w."""
    cols: dict[str, Any] = {}
    for key in varied:
        name, value = key.rsplit(".", 1)[-1], options.get(key)
        if name == "hidden_dims" and isinstance(value, list) and value and len(set(map(str, value))) == 1:
            cols["depth"], cols["width"] = len(value), value[0]
        else:
            cols[name] = value if isinstance(value, (int, float, str)) or value is None else json.dumps(value)
    return cols


def _acc(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def summary_rows(results: list[tuple[dict[str, Any], float, int]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Group (columns, val acc, epochs) results of one cell each by configuration (all columns but the seed).

    Returns the configuration columns and one dict per configuration with its accuracies and epochs,
    best mean validation accuracy first.
    """
    groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"accs": [], "epochs": []})
    names: list[str] = []
    for cols, acc, epochs in results:
        config = {k: v for k, v in cols.items() if k != "seed"}
        names += [k for k in config if k not in names]
        group = groups[json.dumps(config)]
        group.update(config)
        group["accs"].append(acc)
        group["epochs"].append(epochs)
    ranked = sorted(groups.values(), key=lambda g: -statistics.fmean(g["accs"]))
    return names, ranked


def markdown(names: list[str], ranked: list[dict[str, Any]], top: int = 10) -> str:
    """Tables: the best configuration for each value of each column, then the top configurations."""
    head = f"| {' | '.join(names)} | val acc % | seeds | epochs |"
    rule = "|" + "---|" * (len(names) + 3)

    def row(g: dict[str, Any], first: list[str]) -> str:
        cells = [*first, *(str(g.get(n, "")) for n in names), _acc(g["accs"]), str(len(g["accs"]))]
        return "| " + " | ".join([*cells, f"{statistics.fmean(g['epochs']):.0f}"]) + " |"

    lines = ["| best for " + head, "|---" + rule]
    for name in names:
        for value in dict.fromkeys(g.get(name) for g in ranked):
            best = next(g for g in ranked if g.get(name) == value)  # ranked: the first is the best
            lines.append(row(best, [f"{name}={value}"]))
    spreads = [(statistics.stdev(g["accs"]), g) for g in ranked if len(g["accs"]) > 1]
    if spreads:
        worst = max(spreads, key=lambda s: s[0])
        worst_name = ", ".join(f"{n}={worst[1].get(n)}" for n in names)
        median = statistics.median(s for s, _ in spreads)
        spread = f"median {100 * median:.2f}, max {100 * worst[0]:.2f} points ({worst_name})"
        lines += ["", f"Seed spread (std of validation accuracy over seeds, per configuration): {spread}."]
    lines += ["", f"Top {min(top, len(ranked))} of {len(ranked)} configurations:", "", "| rank " + head, "|---" + rule]
    lines += [row(g, [str(i + 1)]) for i, g in enumerate(ranked[:top])]
    return "\n".join(lines) + "\n"


def summary(study: optuna.Study, space: SearchSpace) -> str:
    """The sweep's markdown summary from its storage (each cell counted once, validation accuracy only)."""
    cells: dict[int, optuna.trial.FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        cells.setdefault(t.user_attrs.get("cell", -1), t)
    cells.pop(-1, None)
    varied = [p.key for p in space.params if p.kind == "categorical" and len(p.spec["choices"]) > 1]
    results = []
    for t in cells.values():
        options = space.options(t.params)
        cols = columns(options, [k for k in varied if k != SEED])
        results.append(({**cols, "seed": options.get(SEED)}, float(t.value), int(t.user_attrs.get("epochs", 0))))
    total = study.user_attrs.get("identity", {}).get("cells") or len(cells)
    head = f"Sweep `{study.study_name}`: {len(cells)} of {total} cells finished; validation accuracy (%) of each "
    head += "run's best epoch, mean ± std over seeds; the test split was not used.\n\n"
    if not results:
        return head
    names, ranked = summary_rows(results)
    return head + markdown(names, ranked)


def _short(value: Any) -> str:
    """A parameter value for a table cell: floats to 3 significant digits."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def study_summary(study: optuna.Study, top: int = 10) -> str:
    """A tuning study's markdown summary: its trials by state, their time, the base trial and the best completed."""
    State = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in State}
    spans = [t.datetime_complete - t.datetime_start for t in trials if t.datetime_start and t.datetime_complete]
    hours = sum(span.total_seconds() for span in spans) / 3600
    done = sorted((t for t in trials if t.state == State.COMPLETE), key=lambda t: (-t.value, t.number))
    parts = [f"{counts[s]} {s.name.lower()}" for s in State if counts[s]]
    lines = [
        f"Study `{study.study_name}`: {len(trials)} trials ({', '.join(parts)}), {hours:.1f} hours of trial time; "
        "validation accuracy of each trial's best epoch (seed in the table); the test split was not used.",
        "",
    ]
    base = next((t for t in trials if t.user_attrs.get("base")), None)
    if base is not None and base.state == State.COMPLETE:
        lines += [f"Trial {base.number} is the base config: {100 * base.value:.2f} %.", ""]
    if not done:
        return "\n".join(lines)
    names = list(dict.fromkeys(k for t in done for k in t.params))
    head = ["rank", "trial", "val acc %", "seed", "epochs", *(n.rsplit(".", 1)[-1] for n in names)]
    lines += [f"Top {min(top, len(done))} of {len(done)} completed trials:", "", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * len(head))
    for rank, t in enumerate(done[:top], 1):
        attrs = t.user_attrs
        cells = [rank, t.number, f"{100 * t.value:.2f}", attrs.get("seed", ""), attrs.get("epochs", "")]
        cells += [_short(t.params[n]) if n in t.params else "" for n in names]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"
