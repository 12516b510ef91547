"""optuna-dashboard on an hpstudy study: each trial's learning-curve artifact and diagnosis note.

The fast tests call the dashboard's WSGI app directly. The slow ones start `hpstudy dashboard`
and, for the browser test, open it in headless Chromium (`.ci/run` installs Debian's chromium;
elsewhere that test skips, saying so).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import wsgiref.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna_dashboard
import pytest

from studies import StudyError
from studies.results import serve
from studies.storage import DatabaseArtifactStore, create_engine, open_storage
from studies.workers import CURVES_FILENAME

NAME = "tiny"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study_url(tmp_path_factory: pytest.TempPathFactory, tiny_study: Callable[..., str]) -> str:
    """A finished three-trial digits study, made by an hpstudy worker."""
    return tiny_study(tmp_path_factory.mktemp("dashboard"), run=True)


@pytest.fixture(scope="module")
def app(study_url: str) -> Iterator[Any]:
    engine = create_engine(study_url)
    yield optuna_dashboard.wsgi(
        open_storage(study_url),
        artifact_store=DatabaseArtifactStore(engine),
    )
    engine.dispose()


def get(app: Any, path: str) -> tuple[str, bytes]:
    """Calls the WSGI app as a browser's GET would; returns the status line and the body."""
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    wsgiref.util.setup_testing_defaults(environ)
    statuses: list[str] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    return statuses[0], body


def study_detail(app: Any) -> dict[str, Any]:
    status, body = get(app, "/api/studies/1")
    assert status.startswith("200"), body[:500]
    detail: dict[str, Any] = json.loads(body)
    return detail


# What each trial shows in the dashboard -------------------------------------------------------


def test_every_finished_trial_has_one_learning_curve_artifact(app: Any) -> None:
    trials = study_detail(app)["trials"]
    assert len(trials) == 3
    for trial in trials:
        assert [(a["filename"], a["mimetype"]) for a in trial["artifacts"]] == [
            (CURVES_FILENAME, "image/png")
        ]


def test_the_dashboard_serves_the_picture_from_the_study_database(app: Any) -> None:
    trial = study_detail(app)["trials"][0]
    artifact_id = trial["artifacts"][0]["artifact_id"]
    status, body = get(app, f"/artifacts/1/{trial['trial_id']}/{artifact_id}")
    assert status.startswith("200")
    assert body.startswith(PNG_MAGIC)


def test_every_trial_note_holds_its_diagnosis_and_best_epoch(app: Any) -> None:
    for trial in study_detail(app)["trials"]:
        body = trial["note"]["body"]
        labels = json.loads(
            next(a["value"] for a in trial["user_attrs"] if a["key"] == "diagnosis")
        )
        assert f"### Trial {trial['number']}:" in body
        assert "Best epoch" in body
        for label in labels:
            assert f"**{label.replace('_', ' ')}**" in body
        assert f"![learning curves](/artifacts/1/{trial['trial_id']}/" in body


def test_the_dashboard_needs_an_existing_database(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"no study database at .*; run a study first"):
        serve(f"sqlite:///{tmp_path / 'missing.db'}")


# `hpstudy dashboard` as a server ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(study_url: str) -> Iterator[tuple[str, list[str]]]:
    """`hpstudy dashboard` on the tiny study; yields its URL and its first lines of output."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "studies", "dashboard", "--storage", study_url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        assert process.stdout is not None
        while not any("Listening on" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"the dashboard exited: {''.join(lines)}"
            lines.append(line)
        yield f"http://127.0.0.1:{port}", lines
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_the_dashboard_says_where_it_listens_and_that_it_is_local(
    server: tuple[str, list[str]],
) -> None:
    url, lines = server
    text = "".join(lines)
    assert f"{url}/dashboard/" in text
    assert "127.0.0.1 only (this machine)" in text


@pytest.mark.slow
def test_a_busy_port_is_a_clear_error(study_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "studies", "dashboard", "--storage", study_url]
        done = subprocess.run(
            [*command, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


# In a real browser -------------------------------------------------------------------------------


def browse(
    chromium: list[str], url: str, folder: Path, *extra: str, expect: tuple[str, ...] = ()
) -> str:
    """The DOM of `url` after headless Chromium ran its scripts; retried while slow to render."""
    dom = ""
    for attempt in range(3):
        done = subprocess.run(
            [
                *chromium,
                f"--user-data-dir={folder / f'profile-{attempt}'}",
                "--window-size=1300,1500",
                f"--virtual-time-budget={15_000 * (attempt + 1)}",
                *extra,
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        dom = done.stdout
        if all(text in dom for text in expect):
            break
    return dom


@pytest.mark.slow
@pytest.mark.browser
def test_the_trial_view_shows_the_study_its_trials_and_the_picture(
    server: tuple[str, list[str]], tmp_path: Path, chromium: list[str]
) -> None:
    url, _ = server
    page = f"{url}/dashboard/studies/1/trials?numbers=0"
    expect = (NAME, "Trial 0", "Trial 1", "Trial 2", CURVES_FILENAME, "Diagnosis:")
    dom = browse(chromium, page, tmp_path, expect=expect)
    for text in expect:
        assert text in dom, f"{text!r} is not in the trial view:\n{dom[:3000]}"
    assert '<img class="MuiCardMedia' in dom  # the artifact's preview
    assert 'src="/artifacts/1/' in dom
    shot = tmp_path / "trial-view.png"
    subprocess.run(
        [
            *chromium,
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            "--window-size=1300,1500",
            "--virtual-time-budget=15000",
            f"--screenshot={shot}",
            page,
        ],
        capture_output=True,
        timeout=180,
        check=True,
    )
    assert shot.read_bytes().startswith(PNG_MAGIC)
