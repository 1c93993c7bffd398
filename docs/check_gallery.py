"""Check that the committed example gallery is current: every example ran as it is now.

The gallery's figures and printed output live in ``docs/auto_examples``, made by
sphinx-gallery when it runs ``examples/plot_*.py``; beside each copy of an example
it keeps the MD5 of the source it ran. The docs build reuses those outputs when
the MD5 still matches, and would otherwise run the example again (minutes each on
2 cores). This script fails, naming the examples, when an example has no outputs
or changed since they were made.

Regenerate the gallery after changing an example (or the models it shows)::

    python -m sphinx -b html docs docs/_build/html   # runs the stale examples
    git add docs/auto_examples

Usage: ``python docs/check_gallery.py`` (exit status 1 when stale).
"""

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stale_examples(root=ROOT):
    """Names of the examples whose committed gallery outputs are missing or out of date."""
    stale = []
    for example in sorted((root / "examples").glob("plot_*.py")):
        generated = root / "docs" / "auto_examples" / example.name
        md5_file = generated.with_name(example.name + ".md5")
        # sphinx-gallery hashes the source as text ("t" mode): the same on every OS.
        digest = hashlib.md5(example.read_text(encoding="utf-8").encode()).hexdigest()
        images = list((root / "docs" / "auto_examples" / "images").glob(
            f"sphx_glr_{example.stem}_*.png"
        ))
        if not md5_file.exists() or md5_file.read_text().strip() != digest or not images:
            stale.append(example.name)
    return stale


def main():
    stale = stale_examples()
    if stale:
        print(
            "The committed example gallery is out of date for: " + ", ".join(stale)
            + ".\nRun `python -m sphinx -b html docs docs/_build/html` (it runs them) and "
            "commit docs/auto_examples.",
            file=sys.stderr,
        )
        return 1
    print("example gallery: every example's outputs are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
