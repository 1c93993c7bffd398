"""Sphinx configuration of the sklearn-betavae documentation.

Build as CI does (running the gallery's examples)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

and add ``-D plot_gallery=0`` to build without running them.
"""

import os
import re
import sys

# The package is imported from the checkout, so the docs match the code beside them.
sys.path.insert(0, os.path.abspath(".."))

import sklearn_betavae  # noqa: E402

project = "sklearn-betavae"
author = "sklearn-betavae developers"
copyright = "sklearn-betavae developers"
version = release = sklearn_betavae.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# Warnings are errors in CI (-W); unresolved cross-references to third-party
# objects (torch, skorch) are not, as there is no intersphinx to resolve them.
nitpicky = False

# -- autodoc / autosummary / numpydoc ----------------------------------------
autosummary_generate = True
autodoc_typehints = "none"
# numpydoc renders Parameters / Attributes; the class template lists methods.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True


_FOREIGN_ROLE = re.compile(r":(term|ref):`([^`<]*?)\s*(?:<[^`]*>)?`")


def _plain_foreign_roles(app, what, name, obj, options, lines):
    """Render scikit-learn's own glossary and label references as plain text.

    Methods inherited from scikit-learn (``fit_transform``, ``set_output``,
    ``get_feature_names_out``, ``get_params`` ...) are documented on every
    estimator page, with their docstrings; those point to scikit-learn's glossary
    (``:term:``) and labels (``:ref:``), which do not exist in these docs.
    """
    func = obj.fget if isinstance(obj, property) else obj
    module = getattr(func, "__module__", None) or ""
    if module.startswith("sklearn_betavae"):
        return
    lines[:] = [_FOREIGN_ROLE.sub(lambda m: f"*{m.group(2)}*", line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _plain_foreign_roles)


# -- myst-parser ----------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# -- sphinx-gallery -------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "download_all_examples": False,
    "doc_module": ("sklearn_betavae",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"sklearn_betavae": None},
    "remove_config_comments": True,
}

# -- HTML -----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-betavae {release}"
html_theme_options = {
    "github_url": None,
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = []
