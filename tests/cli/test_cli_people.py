"""setup_test_order.py as a photographer uses it: a folder of a shoot, full quality on purpose,
advice that never leads to a second order, Ctrl-C, and a progress bar that does not pretend."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from rich.console import Console
from rich.progress import Progress
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.cli.main import main
from app.cli.progress import BYTES, STALLED_AFTER, SpeedColumn
from app.cli.usage import EXIT_BAD_FILE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from app.main import create_app
from testkit.processes import ROOT
from tests.support import UvicornThread, settings_of

SAMPLES = ROOT / "sample_images"
FAST = ["--poll-interval", "0.1", "--timeout", "60", "--quiet"]


def stderr_of(capsys: pytest.CaptureFixture[str]) -> str:
    """What the command printed on stderr, with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines as long as the paths in them: rich wraps at the terminal's width, even mid-path."""
    monkeypatch.setenv("COLUMNS", "500")


@pytest.fixture
def sandbox_service(tmp_path: Path) -> Any:
    """Start the service in sandbox mode (its own emulator) with settings overrides."""

    def start(**overrides: Any) -> UvicornThread:
        values: dict[str, Any] = {
            "autoenhance_api_key": None,
            "data_dir": tmp_path / "data",
            "sandbox_processing_delay": 0.2,
            **overrides,
        }
        return UvicornThread(create_app(settings_of(**values)))

    return start


def shoot(folder: Path) -> Path:
    """A shoot's folder as a camera and a laptop leave it: photos, notes, hidden files."""
    folder.mkdir()
    shutil.copyfile(SAMPLES / "garden.jpg", folder / "IMG_10.jpg")
    shutil.copyfile(SAMPLES / "house-front.jpg", folder / "IMG_2.jpg")
    shutil.copyfile(SAMPLES / "living-room.jpg", folder / "img_3.JPG")
    (folder / "notes.txt").write_text("client wants the garden first\n")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 50)
    (folder / "raw").mkdir()
    return folder


def widths(path: Path) -> list[int]:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        sizes = []
        for name in archive.namelist():
            with Image.open(io.BytesIO(archive.read(name))) as photo:
                sizes.append(photo.width)
        return sizes


def test_a_folder_uploads_its_photos_in_name_order_full_quality_into_a_folder(
    sandbox_service: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shoot(tmp_path / "12-harbour-view")
    out = tmp_path / "downloads"
    out.mkdir()
    with sandbox_service() as server:
        code = main(
            [str(folder), "--wait", "--download", str(out), "--full-quality"]
            + ["--service-url", server.url, *FAST],
            env={},
        )
        assert code == EXIT_OK
        captured = capsys.readouterr()
        order_id = captured.out.strip().splitlines()[-1]
        summary = httpx.get(f"{server.url}/orders/{order_id}", timeout=30).json()
    err = " ".join(captured.err.split())
    # Name order as a file browser shows it: IMG_2 before IMG_10, case aside.
    assert [i["image_name"] for i in summary["images"]] == ["IMG_2.jpg", "img_3.JPG", "IMG_10.jpg"]
    assert summary["name"] == "12-harbour-view"
    for left_out in ("notes.txt", ".DS_Store", "raw"):
        assert f"left out (not a photo): {folder / left_out}" in err
    assert "downloading full quality (free here: the service is in sandbox mode)" in err
    saved = out / "12-harbour-view.zip"
    assert f"saved {saved}" in err
    with Image.open(SAMPLES / "house-front.jpg") as original:
        assert widths(saved)[0] == original.width


def test_without_full_quality_the_zip_holds_previews_and_says_so(
    sandbox_service: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shoot(tmp_path / "14 Maple Street")
    out = tmp_path / "downloads"
    out.mkdir()
    with sandbox_service() as server:
        code = main(
            [str(folder), "--wait", "--download", str(out), "--service-url", server.url, *FAST],
            env={},
        )
    assert code == EXIT_OK
    err = stderr_of(capsys)
    assert "downloading free previews" in err
    assert "add --full-quality" in err
    saved = out / "14 Maple Street (preview).zip"
    assert saved.exists()
    with Image.open(SAMPLES / "house-front.jpg") as original:
        assert max(widths(saved)) < original.width


def test_a_folder_without_photos_is_refused_before_any_work(
    refused_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty-shoot"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing yet")
    dead = f"http://127.0.0.1:{refused_port}"
    assert main([str(empty), "--service-url", dead, "--quiet"], env={}) == EXIT_BAD_FILE
    assert f"the folder {empty} holds no photo" in stderr_of(capsys)


def test_download_without_wait_on_a_new_order_suggests_its_id_not_the_same_command(
    sandbox_service: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "early.zip"
    with sandbox_service(sandbox_processing_delay=60) as server:
        code = main(
            [str(SAMPLES / "garden.jpg"), "--download", str(out)]
            + ["--service-url", server.url, "--quiet"],
            env={},
        )
        orders = httpx.get(f"{server.url}/orders", timeout=30).json()["orders"]
    assert code == EXIT_FAILED
    captured = capsys.readouterr()
    assert captured.out == ""  # the run failed: no order id on stdout for a script to use
    err = " ".join(captured.err.split())
    new = [o["order_id"] for o in orders if not o["name"] or "Demo" not in o["name"]]
    assert len(new) == 1
    assert f"run again with --order-id {new[0]} --wait instead of the photos" in err
    assert "second order" in err
    assert "Add --wait" not in err
    assert not out.exists()


def _stuck_service() -> Starlette:
    """A service whose one order never finishes processing."""

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "mode": "sandbox"})

    async def summary(request: Request) -> Response:
        return JSONResponse({"images": [{"status": "processing"}]})

    return Starlette(routes=[Route("/health", health), Route("/orders/{order_id}", summary)])


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is how a terminal sends Ctrl-C")
def test_ctrl_c_exits_130_and_says_what_running_again_does() -> None:
    order = "0b7d6c2e-1111-4222-8333-444455556666"
    with UvicornThread(_stuck_service()) as server:
        process = subprocess.Popen(
            [sys.executable, "setup_test_order.py", "--order-id", order, "--wait"]
            + ["--service-url", server.url, "--poll-interval", "0.1", "--quiet"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert process.stderr is not None
        # Interrupt once the run is waiting on the order (it said so), not at a guessed time.
        seen = ""
        while f"order {order}" not in seen:
            line = process.stderr.readline()
            assert line, f"the command ended early: {seen}"
            seen += line
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED
    said = " ".join((seen + rest).split())
    assert "interrupted: run the same command again" in said
    assert "Traceback" not in said


def test_a_stalled_transfer_shows_no_speed() -> None:
    now = [0.0]
    progress = Progress(SpeedColumn(), console=Console(file=io.StringIO()), get_time=lambda: now[0])
    task = progress.add_task("download", total=10_000_000, unit=BYTES)
    column = progress.columns[0]
    assert isinstance(column, SpeedColumn)
    for _ in range(5):
        now[0] += 0.5
        progress.advance(task, 500_000)
        rendered = column.render(progress.tasks[0]).plain
    assert re.fullmatch(r"[\d.]+ MB/s", rendered), rendered
    # Nothing more arrives: first still the speed, then, past the stall time, no speed at all.
    now[0] += STALLED_AFTER / 2
    assert column.render(progress.tasks[0]).plain.endswith("/s")
    now[0] += STALLED_AFTER
    assert column.render(progress.tasks[0]).plain == "stalled"
    # Bytes again: a speed again.
    now[0] += 0.5
    progress.advance(task, 500_000)
    assert column.render(progress.tasks[0]).plain.endswith("/s")
