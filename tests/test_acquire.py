"""`genre-torch data download|check` against a local HTTP server and a stubbed kagglehub; no internet."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import socket
import stat
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from genre_torch.cli import main
from genre_torch.core.data import find_data_file
from genre_torch.core.data.datasets import SPECS
from tests.conftest import make_music_genre, make_spotify_tracks

pytest.importorskip("requests")  # the [download] extra

CSV = make_spotify_tracks(n=80).to_csv(index=True).encode()
SHA = hashlib.sha256(CSV).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """/good.csv serves CSV; /bad.csv other bytes; /cut.csv half of it under the full Content-Length;
    /flaky.csv cuts the first request only; /ranged.csv too, and answers Range requests (206)."""

    requests = 0
    ranges: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).requests += 1
        asked = self.headers.get("Range")
        type(self).ranges.append(asked)
        first = type(self).requests == 1
        cut = self.path == "/cut.csv" or (self.path in ("/flaky.csv", "/ranged.csv") and first)
        body = CSV.replace(b"acoustic", b"acoustiq") if self.path == "/bad.csv" else CSV
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked and self.path == "/ranged.csv" else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start : len(body) // 2] if cut else body[start:])
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> str:
    """Base URL of a local server; spotify_tracks' known sha256 is the synthetic CSV's."""
    Handler.requests, Handler.ranges = 0, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setitem(SPECS, "spotify_tracks", dataclasses.replace(SPECS["spotify_tracks"], sha256=SHA))
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def download(monkeypatch, url: str, dest: Path, *extra: str) -> None:
    monkeypatch.setenv("GENRE_TORCH_SPOTIFY_TRACKS_URL", url)
    main(["data", "download", "spotify_tracks", "--dest", str(dest), "--no_progress", *extra])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("genre-torch: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_good_file_is_verified_and_placed(server, monkeypatch, tmp_path, capsys) -> None:
    download(monkeypatch, f"{server}/good.csv", tmp_path)
    assert (tmp_path / "spotify_tracks.csv").read_bytes() == CSV
    assert [p.name for p in tmp_path.iterdir()] == ["spotify_tracks.csv"]  # no temporary file left
    assert f"sha256 verified: {SHA}" in capsys.readouterr().out
    download(monkeypatch, f"{server}/good.csv", tmp_path)  # already there and valid: no new request
    assert Handler.requests == 1


@pytest.mark.parametrize(("name", "message"), [("bad", "failed verification"), ("cut", "download from .* failed")])
def test_bad_transfer_is_removed_and_reported(server, monkeypatch, tmp_path, capsys, name, message) -> None:
    with pytest.raises(SystemExit) as exit_info:
        download(monkeypatch, f"{server}/{name}.csv", tmp_path, "--retries", "0")
    assert exit_info.value.code == 2
    import re

    assert re.search(message, one_line_error(capsys))
    assert list(tmp_path.iterdir()) == []  # neither the bad file nor a temporary one


def test_interrupted_transfer_restarts_cleanly(server, monkeypatch, tmp_path) -> None:
    download(monkeypatch, f"{server}/flaky.csv", tmp_path, "--retries", "1")
    assert Handler.requests == 2 and (tmp_path / "spotify_tracks.csv").read_bytes() == CSV


@pytest.mark.parametrize("kind", ["csv", "gz", "zip"])
def test_manual_file_is_verified_and_placed(server, tmp_path, kind) -> None:
    src = tmp_path / f"dl.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(src, "w") as z:
            z.writestr("dataset.csv", CSV)
    else:
        src.write_bytes(gzip.compress(CSV) if kind == "gz" else CSV)
    main(["data", "download", "spotify_tracks", "--dest", str(tmp_path / "d"), "--file", str(src)])
    assert (tmp_path / "d" / "spotify_tracks.csv").read_bytes() == CSV


def test_manual_file_with_wrong_hash_is_refused(server, tmp_path, capsys) -> None:
    (tmp_path / "x.csv").write_bytes(CSV + b"\n")
    with pytest.raises(SystemExit):
        main(["data", "download", "spotify_tracks", "--dest", str(tmp_path / "d"), "--file", str(tmp_path / "x.csv")])
    assert "failed verification" in one_line_error(capsys) and not (tmp_path / "d").exists()  # nor its folder


@pytest.fixture
def no_kaggle_credentials(monkeypatch, tmp_path) -> None:
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "GENRE_TORCH_MUSIC_GENRE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "home" / ".kaggle"))


def test_kaggle_without_credentials_says_how_to_set_them(no_kaggle_credentials, monkeypatch, tmp_path, capsys) -> None:
    kagglehub = pytest.importorskip("kagglehub")

    monkeypatch.setattr(kagglehub, "dataset_download", lambda *a, **k: pytest.fail("no request without credentials"))
    with pytest.raises(SystemExit):
        main(["data", "download", "music_genre", "--dest", str(tmp_path)])
    err = one_line_error(capsys)
    assert all(
        s in err for s in ("KAGGLE_USERNAME", "KAGGLE_KEY", "kaggle.json", "--file", "prediction-of-music-genre")
    )


def test_kaggle_download_is_verified_and_placed(no_kaggle_credentials, monkeypatch, tmp_path, capsys) -> None:
    kagglehub = pytest.importorskip("kagglehub")

    csv = make_music_genre(n=40).to_csv(index=False).encode()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "music_genre.csv").write_bytes(csv)
    spec = dataclasses.replace(SPECS["music_genre"], sha256=hashlib.sha256(csv).hexdigest())
    monkeypatch.setitem(SPECS, "music_genre", spec)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0" * 32)
    calls = []
    monkeypatch.setattr(
        kagglehub, "dataset_download", lambda h, path: calls.append((h, path)) or str(tmp_path / "cache" / path)
    )
    main(["data", "download", "music_genre", "--dest", str(tmp_path / "d")])
    assert calls == [("vicsuperman/prediction-of-music-genre", "music_genre.csv")]
    assert (tmp_path / "d" / "music_genre.csv").read_bytes() == csv

    def fail(*a, **k):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(kagglehub, "dataset_download", fail)
    with pytest.raises(SystemExit):
        main(["data", "download", "music_genre", "--dest", str(tmp_path / "e")])
    assert "ConnectionError: no route to host" in one_line_error(capsys) and not (tmp_path / "e").exists()


def test_missing_data_names_the_download_command(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENRE_TORCH_DATA_DIR", raising=False)
    with pytest.raises(Exception, match="genre-torch data download spotify_tracks"):
        find_data_file(SPECS["spotify_tracks"])


def test_check_summarises_both_datasets(data_env, capsys) -> None:
    main(["data", "check", "music_genre"])
    out = capsys.readouterr().out
    assert "differs from" in out  # synthetic data is not the upstream file
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["tempo"][1:6] == ["numeric", "0", "60", "0", "0"]  # 60 '?' values
    assert lines["duration_ms"][1:6] == ["numeric", "0", "0", "0", "60"]  # 60 times -1
    assert "all-empty rows (dropped)                                 5" in out
    main(["data", "check", str(data_env / "spotify_tracks.csv.gz"), "--no_hash"])
    out = capsys.readouterr().out
    assert "duplicate (track_id, track_genre) rows (dropped)         3" in out
    assert "rows kept for training                                 600" in out
    assert "1 track_id value(s) appear on 2 kept rows" in out


def test_check_rejects_a_csv_without_the_columns(tmp_path, capsys) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit):
        main(["data", "check", str(tmp_path / "x.csv"), "--dataset", "music_genre"])
    assert "lacks required column(s)" in one_line_error(capsys)


class RecordingBar:
    """Stands in for tqdm: records the bar position after every update."""

    bars: list[RecordingBar] = []

    def __init__(self, *args: object, total: int | None = None, **kwargs: object) -> None:
        self.n, self.total, self.positions = 0, total, []
        type(self).bars.append(self)

    def __enter__(self) -> RecordingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int) -> None:
        self.n += n
        self.positions.append((self.n, self.total))

    def reset(self, total: int | None = None) -> None:
        self.n = 0
        self.positions.append((0, total))

    def write(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize("name", ["flaky", "ranged"])
def test_progress_continues_after_a_cut(server, monkeypatch, tmp_path, name) -> None:
    from genre_torch.tools import acquire

    monkeypatch.setattr(acquire, "CHUNK", 1024)  # the first attempt keeps some whole chunks before the cut
    monkeypatch.setattr("tqdm.tqdm", RecordingBar)
    RecordingBar.bars = []
    monkeypatch.setenv("GENRE_TORCH_SPOTIFY_TRACKS_URL", f"{server}/{name}.csv")
    acquire.download(SPECS["spotify_tracks"], tmp_path, retries=1, progress=True)
    assert (tmp_path / "spotify_tracks.csv").read_bytes() == CSV
    [bar] = RecordingBar.bars  # one bar for both attempts
    done = [n for n, _ in bar.positions]
    assert done == sorted(done) and done[-1] == len(CSV) and all(t == len(CSV) for _, t in bar.positions)
    assert Handler.requests == 2 and Handler.ranges[0] is None and Handler.ranges[1].startswith("bytes=")
    assert int(Handler.ranges[1][6:-1]) >= len(CSV) // 2 - 1024  # it asked for the rest only


def test_network_failure_is_one_whole_line(monkeypatch, tmp_path, capsys) -> None:
    def no_dns(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(SystemExit):
        download(monkeypatch, "https://mirror.example.invalid/dataset.csv", tmp_path / "data", "--retries", "0")
    err = one_line_error(capsys)
    assert (
        "(NameResolutionError: Failed to resolve 'mirror.example.invalid' "
        "([Errno -3] Temporary failure in name resolution)); nothing was written to" in err
    )
    assert list(tmp_path.iterdir()) == []


def test_short_reason_cuts_between_words() -> None:
    from genre_torch.tools.acquire import short_reason

    reason = short_reason(OSError("word " * 100))
    assert reason.startswith("OSError: word word") and reason.endswith("word ...") and len(reason) < 180


def test_files_get_the_umask_permissions(server, monkeypatch, tmp_path) -> None:
    old = os.umask(0o022)
    try:
        download(monkeypatch, f"{server}/good.csv", tmp_path / "a")
        (tmp_path / "x.csv").write_bytes(CSV)
        main(["data", "download", "spotify_tracks", "--dest", str(tmp_path / "b"), "--file", str(tmp_path / "x.csv")])
    finally:
        os.umask(old)
    for folder in ("a", "b"):
        assert stat.S_IMODE((tmp_path / folder / "spotify_tracks.csv").stat().st_mode) == 0o644


def test_if_missing_downloads_only_when_training_would_not_find_the_file(server, monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENRE_TORCH_DATA_DIR", raising=False)
    monkeypatch.setenv("GENRE_TORCH_SPOTIFY_TRACKS_URL", f"{server}/good.csv")
    config = tmp_path / "train.yaml"
    config.write_text("data:\n  dataset: spotify_tracks\n  batch_size: 64\n")
    main(["data", "download", "--config", str(config), "--if_missing", "--no_progress"])
    assert Handler.requests == 1 and (tmp_path / "data" / "spotify_tracks.csv").read_bytes() == CSV
    assert find_data_file(SPECS["spotify_tracks"]) == Path("data") / "spotify_tracks.csv"
    capsys.readouterr()
    main(["data", "download", "spotify_tracks", "--if_missing"])
    main(["data", "download", "--config", str(config), "--if_missing"])
    assert Handler.requests == 1  # present: no request, no hashing
    assert capsys.readouterr().out.count("is present; nothing to download") == 2


def test_download_needs_one_dataset(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "download"])
    assert exit_info.value.code == 2 and "NAME or --config" in one_line_error(capsys)


def test_check_counts_non_finite_values(data_env, tmp_path, capsys) -> None:
    df = make_music_genre()
    labelled = df["music_genre"].notna()
    df.loc[labelled & (df.index % 10 == 1), "loudness"] = float("inf")
    df.loc[labelled & (df.index % 10 == 2), "loudness"] = -1e31
    df.to_csv(tmp_path / "inf.csv", index=False)
    main(["data", "check", str(tmp_path / "inf.csv"), "--no_hash"])
    out = capsys.readouterr().out
    header = next(line.split() for line in out.splitlines() if "unparseable" in line)
    assert header[:4] == ["kind", "missing", "unparseable", "non-finite"]
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["loudness"][1:7] == ["numeric", "0", "0", "120", "0", "120"]  # 60 inf + 60 below -1e30


def test_check_shows_the_table_then_the_error_training_would_give(data_env, tmp_path, capsys) -> None:
    make_music_genre().assign(tempo="fast").to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", str(tmp_path / "text.csv"), "--no_hash"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "tempo" in captured.out and "feature column(s) tempo have no usable value" in captured.err


def test_a_spec_file_brings_its_own_source(server, tmp_path, capsys) -> None:
    spec = tmp_path / "mine.yaml"
    spec.write_text(
        f"name: mine\ntarget: track_genre\nnumeric: auto\nsource: {{url: '{server}/good.csv'}}\nsha256: {SHA}\n"
    )
    main(["data", "download", str(spec), "--dest", str(tmp_path / "d"), "--no_progress"])
    assert (tmp_path / "d" / "mine.csv").read_bytes() == CSV and f"sha256 verified: {SHA}" in capsys.readouterr().out
    spec.write_text(f"name: mine\ntarget: track_genre\nnumeric: auto\nsource: {{url: '{server}/good.csv'}}\n")
    main(["data", "download", str(spec), "--dest", str(tmp_path / "e"), "--no_progress"])
    assert "not verified: the spec has no sha256" in capsys.readouterr().out


def test_the_data_commands_and_finding_a_file_import_neither_torch_nor_lightning() -> None:
    """`genre-torch data download/check` and a dataset file lookup answer without torch's and Lightning's import."""
    code = (
        "import sys\n"
        "import genre_torch.tools.acquire, genre_torch.tools.datacli\n"
        "from genre_torch.core.data import DATA_DIR_ENV, data_dirs, find_data_file, read_csv\n"
        "print(sorted(m for m in ('torch', 'pytorch_lightning') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout == "[]\n", proc.stderr[-2000:]
