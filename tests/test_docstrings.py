"""Every public name has a numpydoc docstring with a runnable Examples section.

The examples themselves run as doctests through ``--doctest-modules`` (see
``pyproject.toml``); here we check that they exist and that numpydoc's
validation finds no error among the codes that matter for the API reference.
"""

import importlib
import importlib.util
import inspect

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")
docscrape = pytest.importorskip("numpydoc.docscrape")

PUBLIC_MODULES = [
    "sklearn_betavae",
    "sklearn_betavae.datasets",
    "sklearn_betavae.metrics",
    "sklearn_betavae.model_selection",
    "sklearn_betavae.plotting",
]

# numpydoc validation codes that break or mislead the rendered API reference.
# Left out on purpose, as scikit-learn does: ES01 (extended summary), SA01 (See
# Also), RT02 (named returns are scikit-learn's style), SS02/SS05 (summaries
# such as "beta-VAE: ..." or "Renderer of ..."), GL01 (docstring layout).
VALIDATION_CODES = {
    "GL02",  # closing quotes on their own line
    "GL03",  # double blank lines
    "GL06",  # unknown section
    "GL07",  # sections in the wrong order
    "GL08",  # no docstring
    "SS01",  # no summary
    "SS03",  # summary does not end with a period
    "PR01",  # parameter not documented
    "PR02",  # documented parameter that does not exist
    "PR03",  # parameters in the wrong order
    "PR04",  # parameter without a type
    "PR05",  # parameter type ends with a period
    "PR06",  # "integer" / "boolean" / "string" instead of int / bool / str
    "PR07",  # parameter without a description
    "PR08",  # parameter description does not start with a capital letter
    "PR10",  # "name: type" instead of "name : type"
    "RT01",  # function returns but has no Returns section
    "RT03",  # return value without a description
    "YD01",  # generator without a Yields section
    "SA04",  # See Also entry without a description
}


def _public_names():
    """``(module, name)`` for every name in the ``__all__`` of the public modules."""
    params = []
    for module_name in PUBLIC_MODULES:
        if module_name.endswith(".plotting") and importlib.util.find_spec("matplotlib") is None:
            params.append(
                pytest.param(
                    module_name, None, marks=pytest.mark.skip(reason="matplotlib not installed")
                )
            )
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            # Re-raised inside the test, so a missing module fails loudly there.
            params.append(pytest.param(module_name, None, id=f"{module_name}-<import>"))
            continue
        params.extend(
            pytest.param(module_name, name, id=f"{module_name}.{name}")
            for name in module.__all__
            if not (name.startswith("__") and name.endswith("__"))
        )
    return params


def _own_members(cls):
    """Public methods and properties of ``cls`` defined in this package (not sklearn's)."""
    members = []
    for name, _ in inspect.getmembers(cls):
        if name.startswith("_"):
            continue
        static = inspect.getattr_static(cls, name)
        func = static.fget if isinstance(static, property) else getattr(cls, name)
        if callable(func) and getattr(func, "__module__", "").startswith("sklearn_betavae"):
            members.append(name)
    return members


def _validation_errors(import_path):
    """Errors of numpydoc's validation among ``VALIDATION_CODES``, as readable strings."""
    result = numpydoc_validate.validate(import_path)
    return [
        f"{import_path}: {code} {msg}"
        for code, msg in result["errors"]
        if code in VALIDATION_CODES
    ]


def _examples(obj):
    """Lines of the Examples section of ``obj``'s numpydoc docstring."""
    section = docscrape.get_doc_object(obj)["Examples"]
    # numpydoc gives a list of lines or, for some objects, one string.
    lines = section.splitlines() if isinstance(section, str) else list(section)
    return [line for line in lines if line.strip()]


@pytest.mark.parametrize("module_name, name", _public_names())
def test_public_docstring(module_name, name):
    # Each public name has an Examples section with a doctest and a clean numpydoc docstring.
    module = importlib.import_module(module_name)
    if name is None:
        pytest.fail(f"{module_name} imports but had no __all__ at collection time.")
    assert name in module.__all__
    obj = getattr(module, name)
    assert inspect.getdoc(obj), f"{module_name}.{name} has no docstring"
    examples = _examples(obj)
    assert examples, f"{module_name}.{name} has no Examples section"
    assert any(line.lstrip().startswith(">>>") for line in examples), (
        f"the Examples section of {module_name}.{name} holds no doctest (>>>)"
    )
    errors = _validation_errors(f"{module_name}.{name}")
    if inspect.isclass(obj):
        for member in _own_members(obj):
            errors += _validation_errors(f"{module_name}.{name}.{member}")
    assert not errors, "\n".join(errors)


def _documented_wrong(alpha, beta):
    """Add numbers.

    Parameters
    ----------
    alpha : int
        First number.
    gamma : int
        Not a parameter.

    Returns
    -------
    total : int
        The sum.
    """
    return alpha + beta


def _doctested(alpha):
    """Return alpha.

    Parameters
    ----------
    alpha : int
        Value.

    Returns
    -------
    alpha : int
        The value.

    Examples
    --------
    >>> _doctested(1)
    1
    """
    return alpha


def test_validation_catches_bad_docstrings():
    # The chosen codes flag an undocumented and an unknown parameter, and a
    # docstring without Examples yields an empty Examples section.
    result = numpydoc_validate.validate(f"{__name__}._documented_wrong")
    codes = {code for code, _ in result["errors"]}
    assert {"PR01", "PR02"} <= codes & VALIDATION_CODES
    assert _examples(_documented_wrong) == []
    assert any(line.startswith(">>>") for line in _examples(_doctested))
