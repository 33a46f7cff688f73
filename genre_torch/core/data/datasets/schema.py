"""The dataset spec format: a plain mapping (YAML file, config entry, checkpoint) checked key by key."""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from genre_torch.core.errors import GenreTorchError

AUTO = "auto"
LISTS = ("categorical", "id_columns", "ignore", "dedupe_on", "file_names")
KEYS = (
    "name",
    "description",
    "target",
    "numeric",
    *LISTS,
    "meta",
    "text",
    "song_id",
    "valid_ranges",
    "sha256",
    "source",
)
TEXT_KEYS = {"words": 2, "chars": 4, "min_songs": 2}  # options of a text column and their defaults
SOURCE_KEYS = ("url", "kaggle", "file")
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
SHA256 = re.compile(r"[0-9a-f]{64}")


def read_yaml(path: Path) -> Any:
    """The YAML document in `path`; an unreadable file or bad YAML is a one-line error."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "syntax error"
        raise GenreTorchError(f"{path} is not valid YAML ({problem}{where})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GenreTorchError(f"dataset spec {path} cannot be read ({type(e).__name__}: {e})") from None


def check_mapping(data: Any, origin: str) -> dict[str, Any]:
    """DatasetSpec keyword arguments from a spec mapping; anything unknown or mistyped names its key and origin."""

    def fail(key: str, expected: str, value: Any) -> GenreTorchError:
        return GenreTorchError(f"{origin}: {key} must be {expected}, got {reprlib.repr(value)}")

    def names(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise fail(key, "a list of column names", value)
        return tuple(value)

    def text(key: str, value: Any, pattern: re.Pattern | None = None, expected: str = "a string") -> str:
        if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
            raise fail(key, expected, value)
        return value

    if not isinstance(data, Mapping):
        raise GenreTorchError(f"{origin}: a dataset spec must be a mapping of keys ({', '.join(KEYS)})")
    unknown = [str(k) for k in data if k not in KEYS]
    if unknown:
        raise GenreTorchError(f"{origin}: unknown key {unknown[0]!r}; known keys: {', '.join(KEYS)}")
    for key in ("name", "target"):
        if key not in data:
            raise GenreTorchError(f"{origin}: the key {key!r} is required")
    out: dict[str, Any] = {"name": text("name", data["name"], NAME, "a name of letters, digits, '_', '.', '-'")}
    out["target"] = text("target", data["target"], expected="a column name")
    out["description"] = text("description", data.get("description") or "")
    numeric = data.get("numeric", [])
    if numeric != AUTO and not isinstance(numeric, list):
        raise fail("numeric", "'auto' or a list of column names", numeric)
    out["auto_numeric"] = numeric == AUTO
    out["numeric"] = () if numeric == AUTO else names("numeric", numeric)
    for key in LISTS:
        out[key] = names(key, data.get(key) or [])
    meta = data.get("meta") or {}
    if not isinstance(meta, Mapping) or not all(isinstance(v, str) or v is None for v in meta.values()):
        raise fail("meta", "a mapping of column -> separator (a string, or null for one value)", meta)
    out["meta"] = {str(k): v for k, v in meta.items()}
    for key in ("text", "valid_ranges"):
        if not isinstance(data.get(key) or {}, Mapping):
            raise fail(key, "a mapping of column names to options", data[key])
    out["text"] = {str(k): text_options(f"text.{k}", v, fail) for k, v in (data.get("text") or {}).items()}
    out["song_id"] = text("song_id", data["song_id"], expected="a column name") if data.get("song_id") else None
    out["valid_ranges"] = {str(k): bounds(k, v, fail) for k, v in (data.get("valid_ranges") or {}).items()}
    out["sha256"] = text("sha256", data.get("sha256") or "", re.compile(f"({SHA256.pattern})?"), "64 hex digits")
    source = data.get("source") or {}
    if not isinstance(source, Mapping) or any(k not in SOURCE_KEYS for k in source):
        raise fail("source", f"a mapping with the keys {', '.join(SOURCE_KEYS)}", source)
    out["source"] = {k: text(f"source.{k}", v) for k, v in source.items() if v}
    check_roles(out, origin)
    return out


def text_options(key: str, value: Any, fail: Any) -> dict[str, int]:
    """Options of a text column (null: the defaults): word n-grams up to `words`, character `chars`-grams
    (0: none), tokens kept when found in at least `min_songs` distinct training songs."""
    value = value or {}
    if not isinstance(value, Mapping) or any(k not in TEXT_KEYS for k in value):
        raise fail(key, f"null or a mapping with the keys {', '.join(TEXT_KEYS)}", value)
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values())
    options = {**TEXT_KEYS, **value}
    if not ok or options["min_songs"] < 1 or not (options["words"] or options["chars"]):
        raise fail(key, "integers >= 0 (min_songs >= 1; words or chars > 0)", value)
    return options


def bounds(column: Any, value: Any, fail: Any) -> tuple[float, float]:
    """(lo, hi) of a valid range written [lo, hi]; null is unbounded."""
    ok = isinstance(value, list) and len(value) == 2
    ok = ok and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value)
    if not ok:
        raise fail(f"valid_ranges.{column}", "[low, high] (numbers, or null for no bound)", value)
    lo = -math.inf if value[0] is None else float(value[0])
    hi = math.inf if value[1] is None else float(value[1])
    if not lo <= hi:
        raise fail(f"valid_ranges.{column}", "[low, high] with low <= high", value)
    return lo, hi


def check_roles(spec: dict[str, Any], origin: str) -> None:
    """A column has one role: target, feature (numeric or categorical), id/metadata or ignored."""
    roles = {
        "target": (spec["target"],),
        "numeric": spec["numeric"],
        "categorical": spec["categorical"],
        "id_columns": tuple(dict.fromkeys((*spec["id_columns"], *spec["meta"], *spec["text"]))),
        "ignore": spec["ignore"],
    }
    seen: dict[str, str] = {}
    for role, columns in roles.items():
        for column in columns:
            if column in seen:
                raise GenreTorchError(f"{origin}: column {column!r} is listed under both {seen[column]} and {role}")
            seen[column] = role
    if spec["song_id"] is not None and spec["song_id"] not in spec["id_columns"]:
        raise GenreTorchError(f"{origin}: song_id {spec['song_id']!r} must be one of the id_columns")
    if not spec["auto_numeric"] and not spec["numeric"] and not spec["categorical"]:
        raise GenreTorchError(f"{origin}: no feature columns; list numeric and/or categorical ones, or numeric: auto")
    stray = [c for c in spec["valid_ranges"] if c not in spec["numeric"] and not spec["auto_numeric"]]
    if stray:
        raise GenreTorchError(f"{origin}: valid_ranges names {stray[0]!r}, which is not a numeric column")


def to_mapping(spec: Any) -> dict[str, Any]:
    """The spec as plain primitives (lists, dicts, str, float, None); check_mapping reads it back."""
    out: dict[str, Any] = {"name": spec.name, "description": spec.description, "target": spec.target}
    out["numeric"] = AUTO if spec.auto_numeric else list(spec.numeric)
    out.update({key: list(getattr(spec, key)) for key in LISTS})
    out["meta"] = dict(spec.meta)
    out["text"] = {c: dict(o) for c, o in spec.text.items()}
    if spec.song_id is not None:
        out["song_id"] = spec.song_id
    out["valid_ranges"] = {
        c: [None if math.isinf(lo) else lo, None if math.isinf(hi) else hi] for c, (lo, hi) in spec.valid_ranges.items()
    }
    out["sha256"] = spec.sha256
    out["source"] = dict(spec.source)
    return out
