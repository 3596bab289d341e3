"""The generated data sets and the CSV loader."""

import pytest
import torch

from torch_shallow import DATASETS, load_csv, planar


def test_planar_is_the_course_flower():
    X, Y = planar()
    assert X.shape == (400, 2) and Y.shape == (400, 1) and X.dtype == torch.float32
    assert torch.equal(Y[:200], torch.zeros(200, 1)) and torch.equal(Y[200:], torch.ones(200, 1))
    radius = X.norm(dim=1)
    assert radius.max() < 4.8  # r = 4 sin(4t) + noise: petals of length about 4
    assert torch.equal(planar()[0], X)  # a fixed seed, the same data every time


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_generated_sets_are_balanced_2d(name):
    X, Y = DATASETS[name](dtype=torch.float64)
    assert X.shape == (400, 2) and Y.shape == (400, 1) and X.dtype == torch.float64
    assert Y.sum() == 200 and set(Y.unique().tolist()) == {0.0, 1.0}


def test_csv_round_trip(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("x1,label,x2\n1.5,1,-2\n0,0,3e-1\n\n")
    X, Y = load_csv(path, label="label", dtype=torch.float64)
    assert torch.equal(X, torch.tensor([[1.5, -2.0], [0.0, 0.3]], dtype=torch.float64))
    assert torch.equal(Y, torch.tensor([[1.0], [0.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="label column 'x2' must be 0 or 1"):
        load_csv(path)  # by default the last column holds the labels


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("a,y\n1,0\n2\n", r":3: expected 2 values"),
    ("a,y\n1,0\nabc,1\n", r":3: expected a number, got 'abc'"),
    ("a,y\n1,0\n,1\n", r":3: expected a number, got ''"),
    ("a,y\n1,0\n1,2\n", r":3: label column 'y' must be 0 or 1"),
    ("a,y\nnan,1\n", r":2: NaN or inf"),
    ("a,y\n", "no data rows"),
    ("y\n1\n", "at least one feature column"),
])
def test_csv_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_csv(path)


def test_csv_missing_label_column(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,0\n")
    with pytest.raises(ValueError, match="no label column 'y'"):
        load_csv(path, label="y")
