"""Sphinx configuration for the npnet documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath("../src"))

import npnet  # noqa: E402

project = "npnet"
author = "The npnet developers"
copyright = "2026, The npnet developers"
release = npnet.__version__
version = npnet.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"npnet {release}"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autosummary_generate = False
myst_enable_extensions = ["dollarmath"]
suppress_warnings = ["myst.header"]
nitpicky = False
