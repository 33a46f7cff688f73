"""`genre-torch data download|check` against a local HTTP server and a stubbed kagglehub; no internet."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from genre_torch.cli import main
from genre_torch.core.data import find_data_file
from genre_torch.core.datasets import SPECS
from tests.conftest import make_music_genre, make_spotify_tracks

pytest.importorskip("pooch")  # the [download] extra

CSV = make_spotify_tracks(n=80).to_csv(index=True).encode()
SHA = hashlib.sha256(CSV).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """/good.csv serves CSV; /bad.csv other bytes; /cut.csv half of it under the full Content-Length;
    /flaky.csv cuts the first request only."""

    requests = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).requests += 1
        cut = self.path == "/cut.csv" or (self.path == "/flaky.csv" and type(self).requests == 1)
        body = CSV.replace(b"acoustic", b"acoustiq") if self.path == "/bad.csv" else CSV
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> str:
    """Base URL of a local server; spotify_tracks' known sha256 is the synthetic CSV's."""
    Handler.requests = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setitem(SPECS, "spotify_tracks", dataclasses.replace(SPECS["spotify_tracks"], sha256=SHA))
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def download(monkeypatch, url: str, dest: Path, *extra: str) -> None:
    monkeypatch.setenv("GENRE_TORCH_SPOTIFY_TRACKS_URL", url)
    main(["data", "download", "spotify_tracks", "--dest", str(dest), "--no-progress", *extra])


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
    assert "failed verification" in one_line_error(capsys) and list((tmp_path / "d").iterdir()) == []


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
    assert lines["tempo"][1:5] == ["numeric", "0", "60", "0"]  # 60 '?' values
    assert lines["duration_ms"][1:5] == ["numeric", "0", "0", "60"]  # 60 times -1
    assert "all-empty rows (dropped)                                 5" in out
    main(["data", "check", str(data_env / "spotify_tracks.csv.gz"), "--no-hash"])
    out = capsys.readouterr().out
    assert "duplicate (track_id, track_genre) rows (dropped)         3" in out
    assert "rows kept for training                                 600" in out
    assert "1 track_id value(s) appear on 2 kept rows" in out


def test_check_rejects_a_csv_without_the_columns(tmp_path, capsys) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit):
        main(["data", "check", str(tmp_path / "x.csv"), "--dataset", "music_genre"])
    assert "lacks required column(s)" in one_line_error(capsys)
