"""Property-based fuzzing (hypothesis) of the CSV reader + cleaning, `genre-torch predict`, and the loaders of
dataset specs and search spaces (a valid object or a one-line GenreTorchError, never another exception).

Tables in the music_genre schema whose columns hold realistic values, junk (inf, NaN, huge, negative,
empty strings, unicode, booleans, wrong types) or a mix. Derandomized: CI sees the same examples every run.
"""

from __future__ import annotations

import contextlib
import csv
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from genre_torch.core.data import read_csv
from genre_torch.core.data.datasets import get_spec
from genre_torch.core.errors import GenreTorchError
from tests.fault_tools import listing, run
from tests.trained import trained

SPEC = get_spec("music_genre")
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
WORDS = ["", " ", "inf", "-inf", "Infinity", "nan", "NaN", "NA", "null", "None", "?", "1e308", "-1e308", "1e-320"]
WORDS += ["0x1p3", "１２", "٣", "True", "false", "1,5", "—", "\t", '"', "'", "é", "😀", "-0", "+5", "1_000"]
JUNK = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(WORDS),
    st.text(max_size=10),
    st.booleans(),
)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The cleaning's warnings about unparseable values are expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def base_rows() -> pd.DataFrame:
    return pd.read_csv(trained("music_genre").test_rows)


# pandas' default writer leaves a field holding a bare "\r" unquoted (the file then has one more row):
# both styles here quote it, so the file holds exactly the table's rows
STYLES = [{"quoting": csv.QUOTE_NONNUMERIC}, {"lineterminator": "\r\n"}]


@st.composite
def tables(draw: st.DrawFn, max_rows: int = 6) -> tuple[pd.DataFrame, dict]:
    """A small table with every column of the schema, each column realistic, junk, or mixed; a CSV style."""
    base = base_rows()
    rows = draw(st.integers(1, max_rows))
    columns = {}
    for col in base.columns:
        real = st.sampled_from(base[col].tolist())
        kind = draw(st.sampled_from(["real", "junk", "mixed"]))
        values = real if kind == "real" else JUNK if kind == "junk" else st.one_of(real, JUNK)
        columns[col] = draw(st.lists(values, min_size=rows, max_size=rows))
    return pd.DataFrame(columns), draw(st.sampled_from(STYLES))


def read_and_clean(case: tuple[pd.DataFrame, dict], folder: Path, training: bool) -> pd.DataFrame | None:
    """The table through the CSV file, read_csv and spec.clean; None when refused with a one-line error."""
    table, style = case
    table.to_csv(folder / "x.csv", index=False, **style)
    try:
        return SPEC.clean(read_csv(folder / "x.csv"), training=training)
    except GenreTorchError as e:
        assert "\n" not in str(e)
        return None


@FUZZ
@given(case=tables())
def test_reader_and_cleaning_keep_rows_and_types(case: tuple[pd.DataFrame, dict]) -> None:
    table = case[0]
    with tempfile.TemporaryDirectory() as folder, quiet():
        clean = read_and_clean(case, Path(folder), training=False)
        if clean is None:
            return
        assert len(clean) == len(table)
        for col in SPEC.numeric:
            assert clean[col].dtype == np.float64
        for col in SPEC.categorical:
            assert clean[col].map(lambda v: isinstance(v, str) or pd.isna(v)).all()
        train = read_and_clean(case, Path(folder), training=True)
        if train is not None:
            assert len(train) <= len(table) and train[SPEC.target].map(lambda v: isinstance(v, str)).all()


@FUZZ
@given(case=tables())
def test_cleaning_leaves_no_infinite_values(case: tuple[pd.DataFrame, dict]) -> None:
    """inf, -inf and |x| > 1e30 become missing values (issue 13.1)."""
    with tempfile.TemporaryDirectory() as folder, quiet():
        clean = read_and_clean(case, Path(folder), training=False)
        if clean is not None:
            assert not np.isinf(clean[list(SPEC.numeric)].to_numpy()).any()


@FUZZ
@given(case=tables())
def test_predict_scores_every_row_or_refuses_in_one_line(capsys: pytest.CaptureFixture[str], case) -> None:
    """Exit 0 with the input's row count and finite probabilities (or an error per row), or exit 2 writing nothing."""
    run_ = trained("music_genre")
    classes = set(run_.datamodule.preprocessor.classes)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        table, style = case
        table.to_csv(folder / "in.csv", index=False, **style)
        code, _, err = run(
            capsys, "predict", "--ckpt_path", run_.ckpt, "--input", folder / "in.csv", "--output", folder / "p.csv"
        )
        if code != 0:
            lines = err.strip().splitlines()
            assert code == 2 and len(lines) == 1 and lines[0].startswith("genre-torch: error: "), err
            assert listing(folder) == ["in.csv"]
            return
        pred = pd.read_csv(folder / "p.csv")
        assert len(pred) == len(table) and listing(folder) == ["in.csv", "p.csv"]
        ok = pred["error"].isna().to_numpy()
        probs = pred[[c for c in pred.columns if c.endswith("probability")]].to_numpy(np.float64)
        assert np.isfinite(probs[ok]).all() and ((probs[ok] >= 0) & (probs[ok] <= 1)).all()
        assert np.isnan(probs[~ok]).all() and set(pred["predicted_genre"][ok]) <= classes


# ---- the loaders of dataset specs and search spaces: a valid object or a GenreTorchError, nothing else ----
COLUMNS = st.sampled_from(["a", "b", "label", "tempo", "key", "", "é", "1"])
LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), COLUMNS, st.sampled_from(WORDS),
    st.just("auto"), st.just("0" * 64),
)  # fmt: skip
VALUE = st.recursive(
    LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(COLUMNS | LEAF, inner, max_size=3), max_leaves=8
)
SPEC_KEYS = ["name", "description", "target", "numeric", "categorical", "id_columns", "ignore", "dedupe_on"]
SPEC_KEYS += ["file_names", "meta", "text", "song_id", "valid_ranges", "sha256", "source", "junk"]
SPEC_VALUES = {
    "name": st.sampled_from(["songs", "my.songs-2", "x" * 300, "../up", ""]) | VALUE,
    "target": COLUMNS | VALUE,
    "numeric": st.just("auto") | st.lists(COLUMNS, max_size=3) | VALUE,
    "categorical": st.lists(COLUMNS, max_size=3) | VALUE,
    "meta": st.dictionaries(COLUMNS, st.none() | st.just(";")) | VALUE,
    "text": st.dictionaries(COLUMNS, st.none() | st.dictionaries(st.sampled_from(["words", "chars", "x"]), VALUE))
    | VALUE,
    "valid_ranges": st.dictionaries(COLUMNS, st.lists(st.none() | st.floats() | st.integers(), max_size=3)) | VALUE,
    "source": st.dictionaries(st.sampled_from(["url", "kaggle", "file", "x"]), VALUE) | VALUE,
}
VALID_SPEC = {"name": "songs", "target": "label", "numeric": ["a", "tempo"], "categorical": ["key"]}
# a valid spec with a few keys replaced or added (mostly plausible values, sometimes anything), or anything at all
SPECS = (
    st.lists(st.sampled_from(SPEC_KEYS), max_size=3)
    .flatmap(lambda keys: st.fixed_dictionaries({k: SPEC_VALUES.get(k, VALUE) for k in keys}))
    .map(lambda changes: {**VALID_SPEC, **changes})
    | VALUE
)


@FUZZ
@given(raw=SPECS, as_file=st.booleans())
@example(raw={**VALID_SPEC, "text": ["a"]}, as_file=False)  # found by this test: a list where a mapping belongs
@example(raw={**VALID_SPEC, "valid_ranges": [{}]}, as_file=True)
def test_the_spec_loader_gives_a_spec_or_one_line(tmp_path_factory, raw, as_file: bool) -> None:
    import yaml

    from genre_torch.core.data.datasets import DatasetSpec, load_spec

    source: object = raw
    if as_file:
        source = tmp_path_factory.mktemp("spec") / "spec.yaml"
        source.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    elif not isinstance(raw, dict):
        source = {"name": "s", "target": "t", "numeric": raw}
    try:
        spec = load_spec(source)
    except GenreTorchError as e:
        assert "\n" not in str(e)
        return
    assert DatasetSpec.from_dict(spec.to_dict()) == spec  # what a checkpoint stores reads back the same


@FUZZ
@given(text=st.text(max_size=80) | st.sampled_from(["name: [", "{a: 1", "- - -", ":", "name: !!python/none x"]))
def test_the_spec_loader_on_any_yaml_text(tmp_path_factory, text: str) -> None:
    from genre_torch.core.data.datasets import load_spec

    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_text(text)
    with contextlib.suppress(GenreTorchError):
        load_spec(path)


OPTIONS = st.sampled_from(["model.lr", "data.batch_size", "seed_everything", "model.backbone.hidden_dims", "x"])
NUMBER = st.integers(-3, 300) | st.floats(-1.0, 10.0) | st.sampled_from([0, 1, 1.0e-3, 0.5, True, "1e-3"])
DISTRIBUTION = st.one_of(
    st.fixed_dictionaries({"low": NUMBER, "high": NUMBER}, optional={"log": VALUE, "step": NUMBER, "type": VALUE}),
    st.fixed_dictionaries({"choices": st.lists(LEAF | st.lists(st.integers(1, 4), max_size=2), max_size=4)}),
    st.fixed_dictionaries({"value": VALUE}),
    st.fixed_dictionaries({"choices": st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True)}),
    st.dictionaries(st.sampled_from(["type", "low", "high", "choices", "value", "junk"]), VALUE, max_size=3),
    VALUE,
).flatmap(
    lambda d: (
        st.just(d)
        | st.fixed_dictionaries({"when": st.dictionaries(OPTIONS, VALUE, max_size=2)}).map(
            lambda w: {**d, **w} if isinstance(d, dict) else d
        )
    )
)
SPACES = st.one_of(*[st.dictionaries(OPTIONS, DISTRIBUTION, min_size=1, max_size=4)] * 3, VALUE)


@FUZZ
@given(raw=SPACES)
@example(raw={"model.lr": {"low": -0.9, "high": 8e-103, "step": 1e-106}})  # found by this test: decimal's error
@example(raw={"x": {"value": {None: 1, "a": 2}}})  # found by this test: values with keys of mixed types
def test_the_search_space_loader_gives_a_space_or_one_line(tmp_path_factory, raw) -> None:
    import yaml

    pytest.importorskip("optuna")
    from genre_torch.tools.search_space import SearchSpace

    path = tmp_path_factory.mktemp("space") / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    try:
        space = SearchSpace.load(path)
        space.first()
        space.cover()
        space.grid()
    except GenreTorchError as e:
        assert "\n" not in str(e)


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
@FUZZ
@given(case=tables())
def test_python_api_scores_raw_frames_or_raises_one_error(case: tuple[pd.DataFrame, dict]) -> None:
    """load_predictor's predict and predict_proba on raw frames (as built, and as read from CSV): every row
    finite probabilities summing to 1, or an error naming why (all NaN in predict_proba), or a GenreTorchError."""
    from genre_torch import load_predictor

    predictor = load_predictor(trained("music_genre").ckpt)
    table, style = case
    with tempfile.TemporaryDirectory() as folder:
        table.to_csv(Path(folder) / "x.csv", index=False, **style)
        frames = [table, read_csv(Path(folder) / "x.csv")]
    for frame in frames:
        frame.index = frame.index * 3 + 7  # any index, kept
        try:
            with quiet():
                pred, proba = predictor.predict(frame), predictor.predict_proba(frame)
        except GenreTorchError as e:
            assert "\n" not in str(e)
            continue
        assert list(pred.index) == list(proba.index) == list(frame.index)
        assert list(proba.columns) == predictor.classes
        ok, values = pred["error"].isna().to_numpy(), proba.to_numpy(np.float64)
        assert np.isfinite(values[ok]).all() and np.allclose(values[ok].sum(axis=1), 1, atol=1e-4)
        assert np.isnan(values[~ok]).all() and pred["predicted_genre"][~ok].isna().all()
        np.testing.assert_allclose(pred["probability"][ok].astype(float), values[ok].max(axis=1), rtol=1e-6)
