"""The package as others get it: the sdist and the wheel built from it, the wheel's contents and metadata, and the
wheel installed into a fresh virtual environment, where the command line trains from outside the repository."""

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import tomllib

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def run(args, **kwargs):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The sdist, and the wheel that `python -m build` makes from it (so the sdist is shown to build)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT])
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def test_the_wheel_carries_its_types_license_and_metadata(dist):
    _, wheel = dist
    assert wheel.name == f"torch_shallow-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = z.read(f"torch_shallow-{VERSION}.dist-info/METADATA").decode()
    assert "torch_shallow/py.typed" in names  # PEP 561: type checkers read the package's annotations
    assert f"torch_shallow-{VERSION}.dist-info/licenses/LICENSE" in names
    assert not any(name.startswith(("tests/", "docs/", "experiments/")) for name in names)
    assert f"Version: {VERSION}\n" in metadata and "License-Expression: MIT\n" in metadata
    assert "Classifier: Typing :: Typed\n" in metadata and "License ::" not in metadata
    assert "Requires-Dist: torch>=" in metadata


def test_the_sdist_carries_the_tests_and_what_they_read(dist):
    sdist, _ = dist
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    # every file of tests/, docs/ and experiments/ that is not built output; read from disk, so that this test
    # runs in the sdist too, where there is no git
    built = ("__pycache__", ".ipynb_checkpoints", "docs/_build/", "docs/api/generated/")
    on_disk = {
        p.relative_to(ROOT).as_posix()
        for folder in ("tests", "docs", "experiments")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and not p.name.endswith(".pyc")
    }
    expected = {p for p in on_disk if not any(part in p for part in built)}
    expected |= {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "constraints.txt", "Makefile"}
    assert expected <= names, f"missing from the sdist: {sorted(expected - names)}"
    assert {"tests/conftest.py", "tests/reference.py", "tests/peak_memory.py"} <= names
    assert not any(name.endswith(".whl") for name in names)


def test_the_sdist_tests_are_collected_from_the_unpacked_sdist(dist, tmp_path):
    sdist, _ = dist
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    (unpacked,) = tmp_path.iterdir()
    collected = run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"], cwd=unpacked)
    files = {line.split("::")[0] for line in collected.splitlines() if "::" in line}
    assert files == {p.relative_to(unpacked).as_posix() for p in (unpacked / "tests").glob("test_*.py")}


def test_the_wheel_installs_and_trains_outside_the_repository(dist, tmp_path):
    _, wheel = dist
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python, command = venv / "bin" / "python", venv / "bin" / "torch-shallow"
    # this environment's pip installs into the new one; torch comes from the pinned local wheel
    run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
        + ["-c", ROOT / "constraints.txt", wheel]
    )
    work = tmp_path / "work"  # not the repository: the installed package, not the source tree, is imported
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = run(
        [python, "-c", "import torch_shallow; print(torch_shallow.__version__, torch_shallow.__file__)"],
        cwd=work,
        env=env,
    ).split()
    assert where[0] == VERSION and Path(where[1]).is_relative_to(venv)
    trained = run([command, "train", "--epochs", "20", "--no-log"], cwd=work, env=env)
    assert "20 epochs" in trained, trained
    assert VERSION in run([command, "--version"], cwd=work, env=env)
