"""The generated data sets and the CSV loader."""

import numpy as np
import pytest
import torch

from torch_shallow import DATASETS, load_csv, planar
from torch_shallow.data import csv_chunks


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


def write_csv(path, n, d, seed=0, label_column=None, exponents=(-42, 38)):
    """n rows of d features times 10 ** e, e in ``exponents`` (by default float32's range, subnormals included),
    printed with all of float64's digits; a 0/1 label column at ``label_column`` (last if None), named "y"; a blank
    line after every 5th row."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * 10.0 ** rng.integers(*exponents, (n, d))
    y = rng.integers(0, 2, n).astype(np.float64)
    k = d if label_column is None else label_column
    data = np.insert(X, k, y, axis=1)
    header = [f"x{j}" for j in range(d)]
    header.insert(k, "y")
    lines = [",".join(header)] + [",".join(map(repr, row.tolist())) + ("\n" if i % 5 == 4 else "")
                                  for i, row in enumerate(data)]
    path.write_text("\n".join(lines) + "\n")
    return path


def oracle(path, k, dtype):
    """(X, y) read by NumPy's own parser in float64, then cast: an independent reading of the file."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    return np.delete(data, k, axis=1).astype(dtype), data[:, k].astype(dtype)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("torch_dtype, np_dtype, exponents", [(torch.float16, np.float16, (-9, 4)),
                                                              (torch.float32, np.float32, (-42, 38)),
                                                              (torch.float64, np.float64, (-320, 300))])
def test_load_csv_matches_numpy_bit_for_bit(tmp_path, torch_dtype, np_dtype, exponents):
    path = write_csv(tmp_path / "data.csv", n=200, d=3, label_column=1, exponents=exponents)
    X_ref, y_ref = oracle(path, 1, np_dtype)
    X, Y = load_csv(path, label="y", dtype=torch_dtype)
    assert X.dtype == Y.dtype == torch_dtype and Y.shape == (len(y_ref), 1)
    assert same_bits(X.numpy(), X_ref) and same_bits(Y.numpy().ravel(), y_ref)


@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 23, 1000])
def test_csv_chunks_over_many_chunks(tmp_path, chunk_rows):
    path = write_csv(tmp_path / "data.csv", n=23, d=2)  # 23 = 7 * 3 + 2 = 3 * 7 + 2: a partial last chunk
    chunks = list(csv_chunks(path, chunk_rows=chunk_rows))
    sizes = [len(y) for _, y in chunks]
    assert sizes == [chunk_rows] * (23 // chunk_rows) + ([23 % chunk_rows] if 23 % chunk_rows else [])
    assert all(X.shape == (len(y), 2) and X.dtype == y.dtype == np.float32 for X, y in chunks)
    X_ref, y_ref = oracle(path, 2, np.float32)
    assert same_bits(np.concatenate([X for X, _ in chunks]), X_ref)
    assert same_bits(np.concatenate([y for _, y in chunks]), y_ref)


def numbered_csv(path, bad_row, bad_value, n=30):
    """A CSV file of n rows "i,i%2" with blank lines between some rows, row ``bad_row`` (from 0) holding
    ``bad_value`` in its first column; returns the line of that row."""
    lines, bad_line = ["a,y"], None
    for i in range(n):
        if i % 4 == 1:
            lines.append("")
        lines.append(f"{bad_value if i == bad_row else i},{i % 2}")
        if i == bad_row:
            bad_line = len(lines)
    path.write_text("\n".join(lines) + "\n")
    return bad_line


@pytest.mark.parametrize("bad_value, message", [("abc", "expected a number, got 'abc'"), ("1e308", "too large"),
                                                ("inf", "NaN or inf"), ("1,2", "expected 2 values")])
def test_csv_error_lines_past_the_first_chunk(tmp_path, bad_value, message):
    path = tmp_path / "bad.csv"
    line = numbered_csv(path, bad_row=7, bad_value=bad_value)  # in the third chunk of 3 rows, after 2 blank lines
    assert line == 11
    with pytest.raises(ValueError, match=rf"bad.csv:{line}: .*{message}"):
        list(csv_chunks(path, chunk_rows=3))


def test_csv_reports_the_first_bad_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,y\n1,0\n1e39,1\n2,1\nabc,0\n")  # an overflow, found per chunk, before a bad row in that chunk
    with pytest.raises(ValueError, match=r"bad.csv:3: 1e\+39 is too large for float32"):
        load_csv(path)


@pytest.mark.parametrize("dtype, fits, overflows", [(torch.float32, "3.4028235e38", "3.4028236e38"),
                                                    (torch.float16, "65519", "65520"),
                                                    (torch.float64, "1.7976931348623157e308", "1.8e308")])
def test_csv_refuses_values_that_overflow_the_dtype(tmp_path, dtype, fits, overflows):
    path = tmp_path / "data.csv"
    path.write_text(f"a,y\n{fits},0\n-{fits},1\n")  # round to the largest finite value: kept
    assert torch.isfinite(load_csv(path, dtype=dtype)[0]).all()
    path.write_text(f"a,y\n1,0\n-{overflows},1\n")  # round to -inf (float64: already inf in float())
    with pytest.raises(ValueError, match=r"data.csv:3: .*(too large|NaN or inf)"):
        load_csv(path, dtype=dtype)


@pytest.mark.parametrize("text, message", [
    ('a,y\n1,0\n"2,1\n3,0\n', r"bad.csv:3: malformed CSV record .*unexpected end of data.*quote"),
    ('a,y\n1,"0\n', r"bad.csv:2: malformed CSV record .*unexpected end of data"),
    ("a,y\n1,0\n" + "1" * 140_000 + ",1\n", r"bad.csv:3: malformed CSV record .*field limit"),
    ("1.5,0\n2,1\n", r"bad.csv:1: expected a header row naming the columns"),
    ("a,y\n1,0\n1e308,1\n", r"bad.csv:3: 1e\+308 is too large for float32"),
])
def test_csv_malformed_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_csv(path)


def test_csv_byte_order_mark_and_label_in_the_first_column(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("y,a,b\n1,0.5,2\n0,-1,3\n".encode("utf-8-sig"))  # as Excel saves "CSV UTF-8"
    X, Y = load_csv(path, label="y", dtype=torch.float64)
    assert torch.equal(X, torch.tensor([[0.5, 2.0], [-1.0, 3.0]], dtype=torch.float64))
    assert torch.equal(Y, torch.tensor([[1.0], [0.0]], dtype=torch.float64))


@pytest.mark.parametrize("text, line", [("a,y\n1,0\n\ncaf\xe9,1\n", 4), ("temp\xe9rature,y\n1,0\n", 1),
                                        ("a,y\n1,0\n2,\xa01\n", 3)])
def test_csv_bytes_that_are_not_utf8_name_the_line(tmp_path, text, line):
    path = tmp_path / "latin1.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match=rf"latin1.csv:{line}: byte 0x(e9|a0) is not UTF-8"):
        load_csv(path)
