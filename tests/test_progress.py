"""progress_bar: shown on a terminal and in a Jupyter kernel (the widget with ipywidgets, text on stdout without),
hidden in pipes, never warning. A kernel is simulated by what the module detects: IPython's get_ipython() returning
a shell whose class is (or derives from) ZMQInteractiveShell."""

import io
import sys
import types
import warnings

import IPython
import pytest
from tqdm.notebook import tqdm as notebook_tqdm
from tqdm.std import tqdm as text_tqdm

from torch_shallow.progress import in_jupyter_kernel, progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


class ZMQInteractiveShell:  # the class name is what identifies a Jupyter kernel's shell
    pass


class ColabShell(ZMQInteractiveShell):  # Colab's shell derives from the kernel's
    pass


@pytest.fixture
def plain_script(monkeypatch):
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)  # whatever runs the tests


def kernel(monkeypatch, shell_class=ZMQInteractiveShell, ipywidgets=True):
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell_class())
    if not ipywidgets:
        monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets raises ImportError


def run(make_bar, steps=3):
    """Make a bar, take steps and close it, with every warning an error (no TqdmExperimentalWarning, no
    "IProgress not found"); the bar, and whether it was shown (close() disables every bar)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = make_bar()
        shown = not bar.disable
        bar.update(steps)
        bar.close()
    return bar, shown


def test_hidden_in_a_pipe(plain_script, capsys):  # pytest's captured stderr is not a terminal
    _, shown = run(lambda: progress_bar(10, initial=2, desc="epochs"))
    assert not shown
    assert capsys.readouterr() == ("", "")


def test_shown_on_a_terminal(plain_script, capsys, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar, shown = run(lambda: progress_bar(10, initial=2, desc="epochs"))
    assert type(bar) is text_tqdm and shown
    assert "epochs" in terminal.getvalue() and "5/10" in terminal.getvalue()
    assert capsys.readouterr().out == ""


def test_enabled_overrides_the_guess(plain_script, capsys, monkeypatch):
    _, shown = run(lambda: progress_bar(10, desc="forced", enabled=True))
    err = capsys.readouterr().err
    assert shown and "forced" in err and "3/10" in err
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert not run(lambda: progress_bar(10, desc="off", enabled=False))[1] and sys.stderr.getvalue() == ""
    kernel(monkeypatch)
    assert not run(lambda: progress_bar(10, desc="off", enabled=False))[1]
    assert capsys.readouterr() == ("", "")


def test_kernel_without_ipywidgets_writes_text_to_stdout(capsys, monkeypatch):
    kernel(monkeypatch, ipywidgets=False)
    bar, shown = run(lambda: progress_bar(10, initial=2, desc="epochs"))
    assert type(bar) is text_tqdm and shown
    out, err = capsys.readouterr()
    assert "epochs" in out and "5/10" in out
    assert err == ""  # nothing on stderr, which a notebook shows as a warning box


def test_kernel_with_ipywidgets_shows_the_widget(capsys, monkeypatch):
    kernel(monkeypatch)
    bar, shown = run(lambda: progress_bar(10, initial=2, desc="epochs"))
    assert isinstance(bar, notebook_tqdm) and shown
    assert bar.container.children[1].value == 5 and bar.container.children[1].max == 10
    assert capsys.readouterr().err == ""


def test_kernel_detection(monkeypatch):
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert not in_jupyter_kernel()
    monkeypatch.setattr(IPython, "get_ipython", lambda: types.SimpleNamespace())  # e.g. a terminal IPython
    assert not in_jupyter_kernel()
    for shell in (ZMQInteractiveShell, ColabShell):
        monkeypatch.setattr(IPython, "get_ipython", shell)
        assert in_jupyter_kernel()
    monkeypatch.delitem(sys.modules, "IPython")  # a script that never imported IPython
    assert not in_jupyter_kernel()


def test_enabled_must_be_a_bool_or_none():
    with pytest.raises(TypeError, match="enabled must be True, False or None, got 'yes'"):
        progress_bar(10, enabled="yes")
