"""examples/notebook.ipynb runs top to bottom in a kernel of this Python, as a user runs it.

The notebook is executed once (nbclient, in a temporary folder, so its study database lands
there) and each test reads one thing from the result: no cell failed, the study's trials were
run by two workers, the curves were drawn, the retrain scored the test split, and the progress
was one display redrawn in place rather than a stream of lines.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import nbformat
import optuna
import pytest
from nbclient import NotebookClient

import studies
from studies.storage import WORKER_ATTR

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "examples" / "notebook.ipynb"
STUDY = "notebook-digits"

pytestmark = pytest.mark.slow  # a kernel and two worker processes: about a minute


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The notebook after a run in a fresh folder, and that folder."""
    folder = tmp_path_factory.mktemp("notebook")
    shutil.copy(NOTEBOOK, folder / NOTEBOOK.name)
    # The kernel "python3" is this Python, whatever kernelspecs the user's folders hold:
    # JUPYTER_PATH comes first in Jupyter's search.
    kernels = folder / "jupyter" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (hpstudy tests)",
        "language": "python",
    }
    (kernels / "kernel.json").write_text(json.dumps(spec))
    return _execute(folder), folder


def _execute(folder: Path) -> Any:
    """The notebook in `folder`, run in a new kernel (the folder's Jupyter path first)."""
    saved = {key: os.environ.get(key) for key in ("JUPYTER_PATH", "HPSTUDY_THREADS")}
    os.environ["JUPYTER_PATH"] = str(folder / "jupyter")
    os.environ["HPSTUDY_THREADS"] = "1"  # two workers on a 2-core machine
    try:
        notebook = nbformat.read(folder / NOTEBOOK.name, as_version=4)
        client = NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(folder)}},
        )
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return notebook


def _outputs(notebook: Any, needle: str) -> list[dict[str, Any]]:
    """The outputs of the code cell whose source contains `needle`."""
    [cell] = [c for c in notebook.cells if c.cell_type == "code" and needle in c.source]
    return list(cell.outputs)


def _text(output: dict[str, Any]) -> str:
    if output["output_type"] == "stream":
        return str(output["text"])
    return str(output.get("data", {}).get("text/plain", ""))


def test_every_cell_runs_without_an_error(executed: tuple[Any, Path]) -> None:
    notebook, _ = executed
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    errors = [o for cell in code for o in cell.outputs if o["output_type"] == "error"]
    assert errors == []


def test_the_study_has_complete_trials_from_two_workers(executed: tuple[Any, Path]) -> None:
    _, folder = executed
    study = studies.load(STUDY, storage=f"sqlite:///{folder / 'notebook.db'}")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 6
    workers = {trial.system_attrs.get(WORKER_ATTR) for trial in complete}  # "host:pid"
    assert len(workers) == 2 and None not in workers, workers


def test_the_best_trials_curves_are_drawn_inline(executed: tuple[Any, Path]) -> None:
    notebook, _ = executed
    images = [o for o in _outputs(notebook, "plt.show()") if "image/png" in o.get("data", {})]
    assert len(images) == 1


def test_the_export_is_trained_again_and_scored_on_the_test_split(
    executed: tuple[Any, Path],
) -> None:
    notebook, folder = executed
    outputs = _outputs(notebook, "studies.train(path, test=True)")
    printed = "".join(_text(o) for o in outputs)
    assert "test accuracy" in printed
    [result] = [o for o in outputs if o["output_type"] == "execute_result"]
    assert "test_accuracy" in result["data"]["text/plain"]
    model = tomllib.loads((folder / "best.toml").read_text())["provenance"]["model"]
    assert (model["name"], model["module"]) == ("build", "__main__")
    assert model["code"].startswith("def build(input_shape, num_classes, hidden=64")


def test_progress_is_one_display_redrawn_in_place(executed: tuple[Any, Path]) -> None:
    notebook, _ = executed
    outputs = _outputs(notebook, "studies.run(spec")
    progress = [o for o in outputs if "trials " in _text(o)]
    assert len(progress) == 1 and progress[0]["output_type"] == "display_data"
    assert _text(progress[0]).startswith("trials 6/6 done")


def test_running_it_again_in_a_new_kernel_resumes_the_study(executed: tuple[Any, Path]) -> None:
    _, folder = executed
    again = _execute(folder)  # the cell's function pickles anew; its key is its source's
    said = "".join(_text(o) for o in _outputs(again, "studies.run(spec"))
    assert "already has its 6 trials" in said
    study = studies.load(STUDY, storage=f"sqlite:///{folder / 'notebook.db'}")
    assert len(study.trials) == 6
