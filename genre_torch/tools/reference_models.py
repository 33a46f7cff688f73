"""Reference models of the benchmarks (the accuracy benchmark's anchors), fitted on the networks' encoded features.

The anchors (ANCHORS, fit_anchor): LightGBM, CatBoost and pytabkit's RealMLP. Each fits on the training rows,
stops early on the validation rows and, for the trees, picks one setting of a small fixed grid by validation
log-loss; the test rows are scored once, by the chosen model. All run on one thread: on a shared 2-core machine
OpenMP with 2 threads is far slower than 1. The packages are the optional `bench` extra
(pip install -e ".[bench]"); missing() says which anchor cannot run and why.

The tree reference that needs no extra (hgb_model, fit_predict_hgb): scikit-learn's HistGradientBoosting, the
accuracy benchmark's `hgb` row and scripts/baselines.py's tree.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Callable

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss

ANCHORS = ("lightgbm", "catboost", "realmlp")
PACKAGES = {"lightgbm": "lightgbm", "catboost": "catboost", "realmlp": "pytabkit"}
# (setting name -> values); every combination is one candidate, chosen by validation log-loss
LIGHTGBM_GRID = {"num_leaves": [15, 63], "min_child_samples": [20, 100]}
CATBOOST_GRID = {"depth": [6, 8], "l2_leaf_reg": [3.0]}
QUICK_GRID = {
    "lightgbm": {"num_leaves": [7], "min_child_samples": [20]},
    "catboost": {"depth": [4], "l2_leaf_reg": [3.0]},
}

Splits = dict[str, tuple[np.ndarray, np.ndarray]]  # split name -> (x float32, y class index)


def missing(name: str) -> str | None:
    """Why an anchor cannot run here (its package is not installed), or None when it can."""
    package = PACKAGES[name]
    if importlib.util.find_spec(package) is None:
        return f"{name}: package {package} is not installed (pip install -e '.[bench]')"
    return None


def grid(settings: dict[str, list]) -> list[dict]:
    """Every combination of a grid's values."""
    return [dict(zip(settings, values, strict=True)) for values in itertools.product(*settings.values())]


def choose(fit: Callable[[dict], object], proba: Callable[[object, np.ndarray], np.ndarray], data: Splits,
           candidates: list[dict], classes: int) -> tuple[object, dict, float]:  # fmt: skip
    """Fit every candidate; the one with the lowest validation log-loss, its setting and that loss."""
    xv, yv = data["val"]
    best = None
    for setting in candidates:
        model = fit(setting)
        loss = log_loss(yv, proba(model, xv), labels=np.arange(classes))
        if best is None or loss < best[2]:
            best = (model, setting, loss)
    return best


def lightgbm(data: Splits, classes: int, seed: int, quick: bool) -> tuple[np.ndarray, str]:
    """LightGBM (learning rate 0.05, bagging 0.8, L2 1) early-stopped on validation log-loss; test probabilities."""
    import lightgbm as lgb

    (xt, yt), (xv, yv) = data["train"], data["val"]

    def fit(setting: dict) -> lgb.LGBMClassifier:
        model = lgb.LGBMClassifier(
            n_estimators=20 if quick else 3000, learning_rate=0.05, subsample=0.8, subsample_freq=1,
            colsample_bytree=0.8, reg_lambda=1.0, n_jobs=1, random_state=seed, verbose=-1, **setting,
        )  # fmt: skip
        stop = [lgb.early_stopping(50, verbose=False)]
        return model.fit(xt, yt, eval_X=(xv,), eval_y=(yv,), eval_metric="multi_logloss", callbacks=stop)

    settings = grid(QUICK_GRID["lightgbm"] if quick else LIGHTGBM_GRID)
    model, setting, loss = choose(fit, lambda m, x: m.predict_proba(x), data, settings, classes)
    note = f"{setting}, {model.best_iteration_} rounds, validation log-loss {loss:.4f}"
    return model.predict_proba(data["test"][0]), note


def catboost(data: Splits, classes: int, seed: int, quick: bool) -> tuple[np.ndarray, str]:
    """CatBoost (MultiClass) early-stopped on validation log-loss, best round kept; test probabilities."""
    from catboost import CatBoostClassifier

    (xt, yt), (xv, yv) = data["train"], data["val"]

    def fit(setting: dict) -> CatBoostClassifier:
        model = CatBoostClassifier(
            iterations=20 if quick else 5000, learning_rate=None if quick else 0.08, loss_function="MultiClass",
            thread_count=1, random_seed=seed, verbose=False, od_type="Iter", od_wait=100, use_best_model=True,
            allow_writing_files=False, **setting,
        )  # fmt: skip
        return model.fit(xt, yt, eval_set=(xv, yv))

    settings = grid(QUICK_GRID["catboost"] if quick else CATBOOST_GRID)
    model, setting, loss = choose(fit, lambda m, x: m.predict_proba(x), data, settings, classes)
    note = f"{setting}, {model.get_best_iteration() + 1} rounds, validation log-loss {loss:.4f}"
    return model.predict_proba(data["test"][0]), note


def realmlp(data: Splits, classes: int, seed: int, quick: bool) -> tuple[np.ndarray, str]:
    """pytabkit's RealMLP with its tuned defaults (RealMLP_TD), best epoch on the validation rows."""
    from pytabkit import RealMLP_TD_Classifier

    (xt, yt), (xv, yv) = data["train"], data["val"]
    model = RealMLP_TD_Classifier(device="cpu", random_state=seed, n_threads=1, verbosity=0,
                                  **({"n_epochs": 2} if quick else {}))  # fmt: skip
    model.fit(xt, yt, X_val=xv, y_val=yv)
    proba = np.zeros((len(data["test"][0]), classes))
    proba[:, model.classes_] = model.predict_proba(data["test"][0])  # a class absent from training: probability 0
    return proba, "pytabkit RealMLP_TD defaults" + (", 2 epochs" if quick else "")


FIT = {"lightgbm": lightgbm, "catboost": catboost, "realmlp": realmlp}


def fit_anchor(name: str, data: Splits, classes: int, seed: int, quick: bool = False) -> tuple[np.ndarray, str]:
    """Test-row class probabilities (rows, classes) of one anchor, and a note on what was chosen."""
    return FIT[name](data, classes, seed, quick)


def hgb_model(max_rounds: int, seed: int) -> HistGradientBoostingClassifier:
    """Learning rate 0.1, 31 leaves, L2 1, early stopping on validation accuracy (10 rounds without gain).

    Stopping on accuracy follows the LightGBM reference in DESIGN.md (stopped on error). Without L2, the
    validation accuracy on 114 genres peaked at round 2 and then fell; with L2 = 1 it rises steadily.
    """
    return HistGradientBoostingClassifier(
        max_iter=max_rounds, l2_regularization=1.0, early_stopping=True, scoring="accuracy",
        n_iter_no_change=10, random_state=seed,
    )  # fmt: skip


def fit_predict_hgb(
    model: HistGradientBoostingClassifier, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray,
    x_te: np.ndarray,
) -> tuple[np.ndarray, str]:  # fmt: skip
    """Fit on training rows (stopping on the validation rows); test predictions of the round best on validation."""
    model.fit(x_tr, y_tr, X_val=x_va, y_val=y_va)
    # scikit-learn keeps the rounds after the best one: predict with the round that was best on validation
    best = int(np.argmax([(p == y_va).mean() for p in model.staged_predict(x_va)]))
    predicted = next(p for i, p in enumerate(model.staged_predict(x_te)) if i == best)
    return predicted, f"{model.n_iter_} rounds trained, round {best + 1} best on validation"
