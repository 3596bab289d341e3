"""The documentation: the Sphinx site builds with every warning an error, its API reference covers every module and
export, every Python example of the README and the guide runs as it stands, and the lecture's notebook runs in a
Jupyter kernel of this environment."""

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

import torch_shallow

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDE = DOCS / "guide"
# Pages whose examples a test of their own runs and checks against an independent computation
CHECKED_ELSEWHERE = {
    "torch.md": "tests/test_torch_func.py (readme_examples)",
    "sklearn.md": "tests/test_sklearn.py (test_readme_example)",
}


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


EXAMPLES = [
    pytest.param(code, id=f"{path.relative_to(ROOT)}-{index + 1}")
    for path in [ROOT / "README.md", *sorted(GUIDE.glob("*.md"))]
    if path.name not in CHECKED_ELSEWHERE
    for index, code in enumerate(python_blocks(path))
]


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs_as_it_stands(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write (runs/, files) write there
    exec(compile(code, "example", "exec"), {})


def test_pages_checked_elsewhere_have_examples():
    for name in CHECKED_ELSEWHERE:
        assert python_blocks(GUIDE / name), f"docs/guide/{name} has no ```python example for its test to run"


def test_the_readme_links_to_files_that_exist():
    links = re.findall(r"\]\(([^)#]+)\)", (ROOT / "README.md").read_text())
    local = [link for link in links if "://" not in link]
    assert local, "the README links into the guide"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_every_guide_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    unlinked = [p.name for p in GUIDE.glob("*.md") if f"(docs/guide/{p.name})" not in readme]
    assert not unlinked, f"README.md links to no docs/guide/ page named {unlinked}"


def test_the_api_reference_lists_every_module_and_export():
    index = (DOCS / "api" / "index.rst").read_text()
    listed_modules = set(re.findall(r"^   (torch_shallow\.\w+)$", index, re.M))
    modules = {f"torch_shallow.{m.name}" for m in pkgutil.iter_modules(torch_shallow.__path__) if m.name[0] != "_"}
    assert listed_modules == modules, (
        f"docs/api/index.rst: add {sorted(modules - listed_modules)}, remove {sorted(listed_modules - modules)}"
    )
    listed_names = set(re.findall(r"^   ~\w+\.(\w+)$", index, re.M))
    # DATASETS has no docstring of its own (a summary would show dict's): described in a sentence instead
    assert "``DATASETS``" in index
    assert listed_names | {"DATASETS"} == set(torch_shallow.__all__), (
        f"docs/api/index.rst: add {sorted(set(torch_shallow.__all__) - listed_names - {'DATASETS'})}, "
        f"remove {sorted(listed_names - set(torch_shallow.__all__))}"
    )


def test_the_site_builds_strictly(tmp_path):
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html", "-d", tmp_path / "doctrees"]
        + [DOCS, out],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"sphinx-build -W failed:\n{result.stderr}"
    for page in GUIDE.glob("*.md"):
        assert (out / "guide" / page.with_suffix(".html").name).exists()
    for module in pkgutil.iter_modules(torch_shallow.__path__):
        if module.name[0] != "_":
            assert (out / "api" / "generated" / f"torch_shallow.{module.name}.html").exists()
    activations = (out / "api" / "generated" / "torch_shallow.activations.html").read_text()
    # an attribute docstring reaches the reference, and its value is not dumped beside it
    assert "The hidden-layer activations by name" in activations
    assert "_sigmoid_derivative" not in activations
    trainer = (out / "api" / "generated" / "torch_shallow.trainer.html").read_text()
    assert 'id="torch_shallow.trainer.TrainConfig"' in trainer and 'id="torch_shallow.trainer.fit"' in trainer


def test_the_notebook_is_committed_without_outputs():
    notebook = nbformat.read(DOCS / "lecture.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_the_lecture_notebook_runs(tmp_path):
    notebook = nbformat.read(DOCS / "lecture.ipynb", as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("import sys, matplotlib\nprint(sys.executable)"))
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert Path(text.strip().splitlines()[-1]).resolve() == Path(sys.executable).resolve(), (
        "the kernel python3 is not this environment's Python: another kernelspec named python3 shadows it"
    )
    assert "slides vs autograd" in text and "training accuracy" in text
    assert len(images) == 2  # the cost curve and the decision boundary
