"""The generated data sets and the CSV loader."""

import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from torch_shallow import DATASETS, data, load_csv, planar
from torch_shallow.data import BLOCK_SIZE, csv_chunks


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


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("a,y\n1,0\n2\n", r":3: expected 2 values"),
        ("a,y\n1,0\nabc,1\n", r":3: expected a number, got 'abc'"),
        ("a,y\n1,0\n,1\n", r":3: expected a number, got ''"),
        ("a,y\n1,0\n1,2\n", r":3: label column 'y' must be 0 or 1"),
        ("a,y\nnan,1\n", r":2: NaN or inf"),
        ("a,y\n", "no data rows"),
        ("y\n1\n", "at least one feature column"),
    ],
)
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
    lines = [",".join(header)] + [
        ",".join(map(repr, row.tolist())) + ("\n" if i % 5 == 4 else "") for i, row in enumerate(data)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def oracle(path, k, dtype):
    """(X, y) read by NumPy's own parser in float64, then cast: an independent reading of the file."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    return np.delete(data, k, axis=1).astype(dtype), data[:, k].astype(dtype)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    "torch_dtype, np_dtype, exponents",
    [
        (torch.float16, np.float16, (-9, 4)),
        (torch.float32, np.float32, (-42, 38)),
        (torch.float64, np.float64, (-320, 300)),
    ],
)
def test_load_csv_matches_numpy_bit_for_bit(tmp_path, torch_dtype, np_dtype, exponents):
    path = write_csv(tmp_path / "data.csv", n=200, d=3, label_column=1, exponents=exponents)
    X_ref, y_ref = oracle(path, 1, np_dtype)
    X, Y = load_csv(path, label="y", dtype=torch_dtype)
    assert X.dtype == Y.dtype == torch_dtype and Y.shape == (len(y_ref), 1)
    assert same_bits(X.numpy(), X_ref) and same_bits(Y.numpy().ravel(), y_ref)


@pytest.mark.parametrize("block_size, fewest, most", [(1, 23, 23), (200, 4, 22), (BLOCK_SIZE, 1, 1)])
def test_csv_chunks_over_many_blocks(tmp_path, block_size, fewest, most):
    """A chunk per block of whole records (block_size bytes read, more where a record is longer), none for a block
    of blank lines: one record a chunk with blocks of a byte, one to three with 200 bytes (a row has about 70)."""
    path = write_csv(tmp_path / "data.csv", n=23, d=2)
    chunks = list(csv_chunks(path, block_size=block_size))
    assert fewest <= len(chunks) <= most
    assert all(len(y) > 0 and X.shape == (len(y), 2) and X.dtype == y.dtype == np.float32 for X, y in chunks)
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


@pytest.mark.parametrize(
    "bad_value, message",
    [
        ("abc", "expected a number, got 'abc'"),
        ("1e308", "too large"),
        ("inf", "NaN or inf"),
        ("1,2", "expected 2 values"),
    ],
)
def test_csv_error_lines_past_the_first_block(tmp_path, bad_value, message):
    path = tmp_path / "bad.csv"
    line = numbered_csv(path, bad_row=7, bad_value=bad_value)  # after 2 blank lines, in a block of its own
    assert line == 11
    chunks = csv_chunks(path, block_size=8)  # rows of 4 bytes: 2 or 3 rows a block
    with pytest.raises(ValueError, match=rf"bad.csv:{line}: .*{message}"):
        for read, _ in enumerate(chunks):
            pass
    assert read >= 2  # the bad line's block is not the first


def test_csv_reports_the_first_bad_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,y\n1,0\n1e39,1\n2,1\nabc,0\n")  # an overflow, found per chunk, before a bad row in that chunk
    with pytest.raises(ValueError, match=r"bad.csv:3: 1e\+39 is too large for float32"):
        load_csv(path)


@pytest.mark.parametrize(
    "dtype, fits, overflows",
    [
        (torch.float32, "3.4028235e38", "3.4028236e38"),
        (torch.float16, "65519", "65520"),
        (torch.float64, "1.7976931348623157e308", "1.8e308"),
    ],
)
def test_csv_refuses_values_that_overflow_the_dtype(tmp_path, dtype, fits, overflows):
    path = tmp_path / "data.csv"
    path.write_text(f"a,y\n{fits},0\n-{fits},1\n")  # round to the largest finite value: kept
    assert torch.isfinite(load_csv(path, dtype=dtype)[0]).all()
    path.write_text(f"a,y\n1,0\n-{overflows},1\n")  # round to -inf (float64: already inf in float())
    with pytest.raises(ValueError, match=r"data.csv:3: .*(too large|NaN or inf)"):
        load_csv(path, dtype=dtype)


@pytest.mark.parametrize(
    "text, message",
    [
        ('a,y\n1,0\n"2,1\n3,0\n', r"bad.csv:3: malformed CSV record .*unexpected end of data.*quote"),
        ('a,y\n1,"0\n', r"bad.csv:2: malformed CSV record .*unexpected end of data"),
        ("a,y\n1,0\n" + "1" * 140_000 + ",1\n", r"bad.csv:3: malformed CSV record .*field limit"),
        ("1.5,0\n2,1\n", r"bad.csv:1: expected a header row naming the columns"),
        ("a,y\n1,0\n1e308,1\n", r"bad.csv:3: 1e\+308 is too large for float32"),
    ],
)
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


@pytest.mark.parametrize(
    "text, line", [("a,y\n1,0\n\ncaf\xe9,1\n", 4), ("temp\xe9rature,y\n1,0\n", 1), ("a,y\n1,0\n2,\xa01\n", 3)]
)
def test_csv_bytes_that_are_not_utf8_name_the_line(tmp_path, text, line):
    path = tmp_path / "latin1.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match=rf"latin1.csv:{line}: byte 0x(e9|a0) is not UTF-8"):
        load_csv(path)


def csv_with_bad_row(path, bad_row_text, n=30, bad_row=7, line_end=b"\n"):
    """A CSV file "a,y" of n rows "i,i%2" with blank lines between some rows, the text of row ``bad_row`` (from 0)
    replaced by the bytes ``bad_row_text``; returns that row's line."""
    lines, bad_line = [b"a,y"], None
    for i in range(n):
        if i % 4 == 1:
            lines.append(b"")
        lines.append(bad_row_text if i == bad_row else f"{i},{i % 2}".encode())
        if i == bad_row:
            bad_line = len(lines)
    path.write_bytes(line_end.join(lines) + line_end)
    return bad_line


BAD_ROWS = [
    (b"abc,1", "expected a number, got 'abc'"),
    (b",1", "expected a number, got ''"),
    (b"NA,1", "expected a number, got 'NA'"),
    (b"nan(1),1", "expected a number, got 'nan\\(1\\)'"),  # NaN to Arrow, not a number to float()
    (b"nan,1", "NaN or inf values are not allowed"),
    (b"-Infinity,0", "NaN or inf values are not allowed"),
    (b"7,nan", "NaN or inf values are not allowed"),
    (b"1e39,1", "1e\\+39 is too large for float32, whose largest value is 3.4028234663852886e\\+38"),
    (b"7,2", "label column 'y' must be 0 or 1, got '2'"),
    (b"7,0.5", "label column 'y' must be 0 or 1, got '0.5'"),
    (b"7,1,3", "expected 2 values as in the header, got 3"),
    (b"7", "expected 2 values as in the header, got 1"),
    (b"caf\xe9,1", "byte 0xe9 is not UTF-8 text"),
    (b"\xef\xbb\xbf7,1", "expected a number, got '\\\\ufeff7'"),  # a byte-order mark that is not at the start
    (b'"7" ,1', "malformed CSV record starting on this line .*',' expected after"),  # Arrow would read 7
    (b'""7,1', "malformed CSV record starting on this line"),
    (b'"7,1', "malformed CSV record starting on this line .*unexpected end of data"),  # open to the end
    (b"1." + b"0" * 140_000 + b",1", "malformed CSV record starting on this line .*field limit"),  # 1.0 to Arrow
]


@pytest.mark.parametrize("text, message", BAD_ROWS)
@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_csv_every_error_names_its_line_in_a_later_block(tmp_path, text, message, line_end):
    path = tmp_path / "bad.csv"
    line = csv_with_bad_row(path, text, line_end=line_end)
    assert line == 11
    chunks = csv_chunks(path, block_size=8)  # rows of 4 or 5 bytes: a few rows a block
    with pytest.raises(ValueError, match=rf"bad.csv:{line}: {message}"):
        for read, _ in enumerate(chunks):
            pass
    assert read >= 2  # the bad line's block is not the first
    with pytest.raises(ValueError, match=rf"bad.csv:{line}: {message}"):
        load_csv(path)  # and in the one block of the default size


def test_csv_first_error_of_a_block_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,y\n" + "".join(f"{i},0\n" for i in range(20)) + "1,5\nabc,0\n1e39,1\n")
    with pytest.raises(ValueError, match=r"bad.csv:22: label column"):
        load_csv(path)


def test_csv_header_after_blank_lines_spanning_lines(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('\n\n"a\nb",y\n1,0\n2,3\n')  # lines 1-2 blank, the header on lines 3-4
    with pytest.raises(ValueError, match=r"bad.csv:6: label column 'y' must be 0 or 1"):
        load_csv(path)
    path.write_text("\n" * 50 + "a,y\n" + "1,1\n" * 5 + "1,7\n")
    with pytest.raises(ValueError, match=r"bad.csv:57: label column"):
        list(csv_chunks(path, block_size=4))  # blocks of blank lines before the header


@pytest.mark.parametrize("text", ["a,y,y\n1,0,1\n", "y,a,y\n1,0,1\n"])
def test_csv_label_column_named_twice(tmp_path, text):
    path = tmp_path / "data.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"data.csv:1: 2 columns are named 'y'"):
        load_csv(path, label="y")
    assert load_csv(path)[1].tolist() == [[1.0]]  # the last column, by position, is not ambiguous


def test_csv_read_as_python_reads_it(tmp_path):
    """What Arrow reads otherwise than Python's csv module and float() is read as they read it."""
    path = tmp_path / "data.csv"
    path.write_text('a,b,y\n"1.5","-2",1\n , ,\n,,\n 3 ,\t4\t,0\n1_000,5,0\n"6\n",7,1\n')
    X, Y = load_csv(path, dtype=torch.float64)  # rows of blank cells skipped; "1_000" and "6\n" read by float()
    assert X.tolist() == [[1.5, -2.0], [3.0, 4.0], [1000.0, 5.0], [6.0, 7.0]] and Y.flatten().tolist() == [1, 0, 0, 1]


def test_csv_of_plain_numbers_is_read_by_arrow_alone(tmp_path, monkeypatch):
    """The row-by-row reading is for blocks with errors only: a file of numbers, blank lines and all, is Arrow's."""
    path = write_csv(tmp_path / "data.csv", n=300, d=3)
    monkeypatch.setattr(data, "_reread", lambda *args: pytest.fail("a good block was read again row by row"))
    X, Y = load_csv(path, dtype=torch.float64)
    X_ref, y_ref = oracle(path, 3, np.float64)
    assert same_bits(X.numpy(), X_ref) and same_bits(Y.numpy().ravel(), y_ref)


def test_csv_unclosed_quote_stops_at_the_field_limit(tmp_path):
    """An unclosed quote does not make the reader hold the rest of the file: the field is over csv's limit first."""
    path = tmp_path / "bad.csv"
    path.write_text('a,y\n1,0\n"2,1\n' + "3,0\n" * 100_000)
    with pytest.raises(ValueError, match=r"bad.csv:3: malformed CSV record .*field limit"):
        list(csv_chunks(path, block_size=1024))
    assert data._open_field_over_limit(b'1,"' + b"2" * 140_000) and not data._open_field_over_limit(b'1,"2\n3')


def test_csv_blocks_end_after_whole_records():
    assert data._record_end(b"1,2\n3,4\n5,") == 8
    assert data._record_end(b'1,"a\nb"\n5') == 8  # a line end inside quotes ends no record
    assert data._record_end(b'1,"a\nb\n5') == 0
    assert data._record_end(b"1,2\r\n3,4\r") == 5  # a "\n" may follow the last "\r"
    assert data._record_end(b"1,2\r3,4\r5") == 8


LOAD_CSV_PEAK = """
import sys
from pathlib import Path
import pyarrow.csv  # loaded where load_csv first reads: the code is no part of the data's memory
from torch_shallow import load_csv

def kib(field):
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))

Path("/proc/self/clear_refs").write_text("5")
before = kib("VmRSS")
X, Y = load_csv(sys.argv[1])
print((kib("VmHWM") - before) / 1024)
"""


def test_load_csv_memory_is_bounded_by_a_multiple_of_the_data(tmp_path):
    """500,000 rows × 16 features + labels in float32 are 32 MiB, the file about 160 MiB: load_csv holds the
    chunks, the tensors made of them and a block of text at a time, not the file."""
    n, d = 500_000, 16
    rng = np.random.default_rng(0)
    rows = "".join(",".join(f"{v:.5f}" for v in rng.standard_normal(d)) + f",{i % 2}\n" for i in range(1000))
    path = tmp_path / "data.csv"
    path.write_text(",".join(f"x{j}" for j in range(d)) + ",y\n" + rows * (n // 1000))
    out = subprocess.run([sys.executable, "-c", LOAD_CSV_PEAK, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    data_mib = n * (d + 1) * 4 / 2**20
    assert float(out.stdout.split()[-1]) < 3 * data_mib


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_csv_error_lines_of_a_pipe(tmp_path, line_end):
    """A pipe, which cannot be read again for the line of an error, has its lines counted as it is read."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    text = tmp_path / "text"
    line = csv_with_bad_row(text, b"7,2", line_end=line_end)
    writer = threading.Thread(target=lambda: fifo.write_bytes(text.read_bytes()), daemon=True)
    writer.start()
    with pytest.raises(ValueError, match=rf"fifo:{line}: label column 'y' must be 0 or 1"):
        list(csv_chunks(fifo, block_size=8))
    writer.join(timeout=60)


def test_csv_error_line_found_again_across_reads(tmp_path, monkeypatch):
    """A file's lines are counted again for an error, in reads that may cut a "\\r\\n" in two."""
    monkeypatch.setattr(data, "BLOCK_SIZE", 3)
    path = tmp_path / "bad.csv"
    line = csv_with_bad_row(path, b"7,2", line_end=b"\r\n")
    with pytest.raises(ValueError, match=rf"bad.csv:{line}: label column 'y' must be 0 or 1"):
        list(csv_chunks(path, block_size=8))


def test_csv_block_ending_in_cr_waits_for_the_lf_of_the_next_read(tmp_path):
    """Reads of 5 bytes over rows "10,1\\r\\n" of 6 end on the "\\r" of a "\\r\\n" whose "\\n" comes in the next
    read: the block is not cut there, so that no block starts with a stray "\\n" (a line too many, for a pipe
    whose lines are counted block by block)."""
    text = b"a,y\r\n" + b"".join(f"{i},{i % 2}\r\n".encode() for i in range(10, 40))
    blocks = [bytes(block) for _, block in data._blocks(io.BytesIO(text), 5)]
    assert b"".join(blocks) == text and len(blocks) > 10
    assert all(block.endswith(b"\r\n") for block in blocks)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(text + b"40,2\r\n"), daemon=True)
    writer.start()
    with pytest.raises(ValueError, match=r"fifo:32: label column 'y' must be 0 or 1, got '2'"):
        list(csv_chunks(fifo, block_size=5))
    writer.join(timeout=60)


def test_import_torch_shallow_leaves_pyarrow_unloaded():
    """pyarrow (some 100 ms and 60 MiB) is imported where CSV and Parquet files are read, not by the package."""
    code = "import sys, torch_shallow; print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyarrow'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
