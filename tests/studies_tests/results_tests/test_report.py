"""`hpstudy report`: one self-contained HTML page that opens offline."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from studies import StudyError
from studies.cli import main
from studies.results import write_report

NAME = "tiny"
SECTIONS = (
    "Optimisation history",
    "Parameter importances",
    "Parallel coordinates",
    "Intermediate values",
    "Learning curves of the",
    "Diagnosis of every finished trial",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, tiny_study: Callable[..., str]) -> Path:
    """The report of a finished three-trial digits study made by an hpstudy worker."""
    folder = tmp_path_factory.mktemp("report")
    url = tiny_study(folder, seed=1, run=True)
    return write_report(NAME, url=url, output=folder / "report.html")


def body(report: Path) -> str:
    """The page after its head, which holds plotly.js (whose own strings name web sites)."""
    rest = report.read_text().partition("</head>")[2]
    assert rest, "the page has no </head>"
    return rest


def test_the_page_has_every_section(report: Path) -> None:
    page = body(report)
    for title in SECTIONS:
        assert f"<h2>{title}" in page
    assert "not available" not in page


def test_plotly_is_inlined_once_and_nothing_is_fetched(report: Path) -> None:
    head = report.read_text().partition("</head>")[0]
    assert head.count("<script>") == 1 and len(head) > 1_000_000  # plotly.js itself
    page = body(report)
    assert page.count('class="plotly-graph-div"') == 4
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script src" not in page


def test_the_learning_curves_are_embedded_pictures(report: Path) -> None:
    assert body(report).count("src='data:image/png;base64,") == 3


def test_the_diagnosis_table_has_a_row_per_finished_trial(report: Path) -> None:
    page = body(report)
    table = page[page.index("<table id='diagnosis'>") :]
    assert table.count("<tr>") == 1 + 3
    assert "good fit" in table or "underfitting" in table or "diverged" in table


def test_a_study_without_finished_trials(tmp_path: Path, tiny_study: Callable[..., str]) -> None:
    url = tiny_study(tmp_path, n_trials=2)
    with pytest.raises(StudyError, match="no finished trial yet"):
        write_report(NAME, url=url, output=tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


def test_an_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"\.html, \.htm"):
        write_report(NAME, url=f"sqlite:///{tmp_path / 'x.db'}", output=tmp_path / "r.pdf")


def test_an_unknown_study_is_a_one_line_error(
    report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{report.parent / 'study.db'}"
    assert main(["report", "other", "--storage", url, "-o", str(report.parent / "o.html")]) == 2
    err = capsys.readouterr().err
    assert "no study named 'other'" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_draws_its_charts_offline_in_a_browser(
    report: Path, tmp_path: Path, chromium: list[str]
) -> None:
    done = subprocess.run(
        [
            *chromium,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            # Offline: every host name resolves nowhere.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert done.stdout.count('class="main-svg"') >= 4  # plotly drew every figure
