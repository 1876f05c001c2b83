"""The notebooks: committed clean (no outputs), thin (no functions of their own), and they run top to bottom
headless with small parameters injected below their `parameters` cell (papermill style), on this
interpreter's kernel, from a temporary working folder."""

import json
import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is a dev extra: pip install -e '.[dev]'")
nbclient = pytest.importorskip("nbclient", reason="nbclient is a dev extra: pip install -e '.[dev]'")
pytest.importorskip("ipykernel", reason="ipykernel is a dev extra: pip install -e '.[dev]'")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
REAL_CSV = REPO.parent / "shared" / "data" / "petfinder" / "train.csv"
NAMES = ["01_eda.ipynb", "02_train_and_search.ipynb", "03_saliency_hypotheses.ipynb"]
#: Per-cell limit; a whole small-parameter notebook takes a few minutes at most.
CELL_TIMEOUT = 600

# Tiny, fast settings shared by 02 and 03: a random-weight MobileNetV2 on 32 px demo photos.
TINY_MODEL = {"BACKBONE": "mobilenetv2", "WEIGHTS": None, "IMAGE_SIZE": 32, "DEMO_N": 80, "DEMO_SIZE": 48}


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A kernelspec running this very interpreter (the venv the tests run in), found first on JUPYTER_PATH."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "pawtf-tests"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "pawtf tests", "language": "python",
        "env": {"TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}}))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(root) + (os.pathsep + old if old else "")
    yield "pawtf-tests"
    if old is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = old


def parameters_cell(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    return tagged[0]


def execute(kernel, name: str, params: dict, cwd: Path):
    """Run notebook `name` with `params` injected after its parameters cell; return (notebook, seconds,
    all text output)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    idx = parameters_cell(nb)
    source = nb.cells[idx].source
    unknown = [k for k in params if f"\n{k} =" not in "\n" + source]
    assert not unknown, f"{name} has no parameters {unknown}"
    injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(idx + 1, injected)
    cwd.mkdir(parents=True, exist_ok=True)
    client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": str(cwd)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    print(f"{name}: {seconds:.0f} s")
    text = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text.append(output["text"])
            elif "data" in output and "text/plain" in output["data"]:
                text.append(output["data"]["text/plain"])
    return nb, seconds, "\n".join(text)


@pytest.mark.parametrize("name", NAMES)
def test_committed_clean_and_thin(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip the outputs"
    assert code[0] is nb.cells[parameters_cell(nb)], "the first code cell holds the parameters"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in code:  # thin: logic lives in the library, not in the notebook
        assert "\ndef " not in "\n" + cell.source and "\nclass " not in "\n" + cell.source


@pytest.mark.skipif(not REAL_CSV.is_file(),
                    reason=f"{REAL_CSV} (the real table beside the checkout) is absent")
def test_01_eda_on_the_real_table(kernel, tmp_path):
    out = tmp_path / "out"
    _, _, text = execute(kernel, "01_eda.ipynb", {"CSV": str(REAL_CSV), "OUT": str(out), "BOOTSTRAP": 10},
                         tmp_path / "cwd")
    assert "9912 rows" in text and "GENERATED DEMO TABLE" not in text
    assert "none reaches Cohen's 'small'" in text
    for name in ("ranking.csv", "metadata.png", "metadata.json", "scores.png", "flags.png", "boxes.png",
                 "combinations.png"):
        assert (out / name).is_file(), name


def test_01_eda_without_the_real_table_says_so_and_runs(kernel, tmp_path):
    out = tmp_path / "out"
    _, _, text = execute(kernel, "01_eda.ipynb", {"USE_REAL": False, "OUT": str(out), "DEMO_N": 300,
                                                  "BOOTSTRAP": 5, "FOLDS": 3}, tmp_path / "cwd")
    assert "GENERATED DEMO TABLE" in text and "demo table: these lines describe the generator" in text
    assert (out / "ranking.csv").is_file() and (out / "metadata.png").is_file()


def test_02_train_search_export(kernel, tmp_path):
    work = tmp_path / "work"
    params = {**TINY_MODEL, "WORK": str(work), "EPOCHS": 2, "SEARCH_BACKBONES": ("mobilenetv2",),
              "SEARCH_TRIALS": 2, "SEARCH_EPOCHS": 3, "SEARCH_MINUTES": 3.0}
    _, _, text = execute(kernel, "02_train_and_search.ipynb", params, tmp_path / "cwd")
    run = work / "run"
    assert (run / "model.keras").is_file() and (run / "history.csv").is_file()
    search = work / "search" / "notebook"
    best = json.loads((search / "best.json").read_text())
    assert best["trials_completed"] >= 1 and (search / "trials.csv").is_file()
    assert (search / "best" / "model.keras").is_file()
    exported = [p for p in (work / "saved_models").rglob("saved_model.pb")]
    assert len(exported) >= 2, exported  # the search's best model and the trained run
    assert "serving matches Keras" in text


def test_03_saliency_hypotheses(kernel, tmp_path):
    work = tmp_path / "work"
    params = {**TINY_MODEL, "WORK": str(work), "EPOCHS": 1, "PER_GROUP": 1, "RISE_MASKS": 50,
              "AUC_STEP": 0.25, "GROUP_SIZE": 2, "BOOTSTRAP": 0}
    params["CSV"] = str(REAL_CSV)
    if not REAL_CSV.is_file():
        params["USE_REAL"] = False
    _, _, text = execute(kernel, "03_saliency_hypotheses.ipynb", params, tmp_path / "cwd")
    verdicts = work / "verdicts.csv"
    assert verdicts.is_file()
    import pandas as pd

    table = pd.read_csv(verdicts)
    assert list(table["hypothesis"]) == ["face_tongue", "contrast", "accessory", "pose", "several"]
    assert table["saliency"].notna().all() and table["demo_model"].notna().all()
    if REAL_CSV.is_file():
        assert table["real_table"].str.contains("NOT SUPPORTED").sum() >= 4
    assert (work / "explain" / "summary.csv").is_file()
    assert list((work / "explain").glob("groups_*.png"))
