"""Sphinx configuration: the user guide in Markdown (MyST), the API reference from the docstrings (Google style,
through napoleon). `make docs` builds it strictly: every warning is an error."""

from importlib.metadata import version as installed_version

project = "torch_shallow"
author = "The torch_shallow authors"
copyright = "2026, The torch_shallow authors"
release = installed_version("torch_shallow")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
templates_path = ["_templates"]

# MyST: GitHub-style anchors on headings down to ###, so that pages can link to each other's sections
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# autodoc and autosummary: one page per module (api/generated/), members in the order of the source
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
# a method without a docstring of its own shows none, rather than its base class's (torch's Function.forward
# refers to labels of the PyTorch documentation)
autodoc_inherit_docstrings = False

# napoleon: Google-style sections only; Attributes: as a field list, so that an attribute documented both in its
# class's Attributes: section and by a docstring of its own is not described twice
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

html_theme = "furo"
html_title = f"torch_shallow {release}"


def skip_foreign_members(app, what, name, obj, skip, options):
    """Document torch_shallow's own code only: not the methods that scikit-learn's base classes generate on
    ShallowClassifier (set_fit_request, ...), whose docstrings refer to scikit-learn's own documentation."""
    module = getattr(obj, "__module__", None)
    if callable(obj) and module is not None and not module.startswith("torch_shallow"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", skip_foreign_members)
