"""The times and printed results the README quotes, measured by running the README.

Runs, from the repository root with the package already installed:

- every ```` ```python ```` block of ``README.md``, in order, in one namespace
  (later blocks use earlier blocks' variables, as a reader pasting them would),
  in a fresh Python process started in a temporary directory (so files the
  blocks write, such as ``vae.safetensors``, land there): each block's wall time
  and the last line it printed;
- the demo command, ``python -m sklearn_betavae demo``: its wall time and the
  lines of its result (training time, held-out ELBO, the classifiers' accuracy);
- with ``--tests``, the test command, ``python -m pytest -q -p no:cacheprovider``;
- with ``--docs``, the documentation builds, with and without the gallery
  (``-D plot_gallery=0``), into a temporary directory, and each gallery
  example's run time as sphinx-gallery recorded it (``sg_execution_times.rst``).
  The generated ``docs/auto_examples`` is removed first, so that every example
  runs.

The installation step of the README's commands (``pip install -e ...``) is not
timed: the README quotes times "after the installation".

Usage::

    python benchmarks/bench_readme.py [--tests] [--docs] [--markdown FILE]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from bench_defaults import _machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs the blocks given as a JSON list on stdin in one namespace; prints one JSON
# line per block: its wall time and its output.
_DRIVER = r"""
import contextlib, io, json, sys, time
blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
for block in blocks:
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "<README block>", "exec"), namespace)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "output": out.getvalue()}), flush=True)
"""


def readme_blocks(path):
    """The README's python blocks, each with the heading of its section."""
    with open(path) as f:
        text = f.read()
    blocks = []
    heading = ""
    for match in re.finditer(r"^(#+ [^\n]*)$|^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
        else:
            blocks.append((heading, match.group(2)))
    return blocks


def _last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_blocks(blocks):
    """One row per block: its label, wall time and last printed line."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", _DRIVER], input=json.dumps([code for _, code in blocks]),
            capture_output=True, text=True, cwd=tmp, check=False,
        )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        raise SystemExit(f"README block {len(results) + 1} failed:\n{proc.stderr}")
    rows = []
    for number, ((heading, code), result) in enumerate(zip(blocks, results), 1):
        first = next(line for line in code.splitlines() if line.strip())
        rows.append((f"python block {number} ({heading}: `{first.strip()}` ...)",
                     result["seconds"], _last_line(result["output"])))
    return rows


def gallery_times(path):
    """(example, seconds) pairs from sphinx-gallery's ``sg_execution_times.rst``."""
    with open(path) as f:
        text = f.read()
    pattern = r"``\.\./examples/(\w+\.py)``\)\s*\n\s*- (\d+):(\d+\.\d+)"
    return [(name, 60 * int(minutes) + float(seconds))
            for name, minutes, seconds in re.findall(pattern, text)]


def run_command(label, command, cwd):
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                         f"\n{proc.stderr[-3000:]}")
    return label, seconds, proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", action="store_true", help="also time the test command")
    parser.add_argument("--docs", action="store_true", help="also time the docs builds")
    parser.add_argument("--markdown", help="write the table to this file too")
    args = parser.parse_args()

    rows = []
    label, seconds, out = run_command(
        "demo: `python -m sklearn_betavae demo`",
        [sys.executable, "-m", "sklearn_betavae", "demo"], ROOT)
    result = [line for line in out.splitlines()
              if line.startswith(("trained in", "held-out ELBO", "logistic regression", "done in"))]
    rows.append((label, seconds, " / ".join(" ".join(line.split()) for line in result)))
    if args.tests:
        label, seconds, out = run_command(
            "tests: `python -m pytest`",
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], ROOT)
        rows.append((label, seconds, _last_line(out)))
    rows.extend(run_blocks(readme_blocks(os.path.join(ROOT, "README.md"))))
    if args.docs:
        for extra, name in (([], "docs with the gallery"),
                            (["-D", "plot_gallery=0"], "docs without the gallery")):
            # sphinx-gallery skips examples whose output it has from an earlier build:
            # remove it (generated, git-ignored), so that every example runs.
            shutil.rmtree(os.path.join(ROOT, "docs", "auto_examples"), ignore_errors=True)
            with tempfile.TemporaryDirectory() as out_dir:
                label, seconds, _ = run_command(
                    f"{name}: `python -m sphinx -W --keep-going -b html docs ...{' ' if extra else ''}"
                    f"{' '.join(extra)}`",
                    [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                     *extra, "docs", out_dir], ROOT)
            rows.append((label, seconds, ""))
            if not extra:
                for name, seconds in gallery_times(
                        os.path.join(ROOT, "docs", "sg_execution_times.rst")):
                    rows.append((f"gallery example `{name}`", seconds, ""))

    flags = "".join(f" --{name}" for name in ("tests", "docs") if getattr(args, name))
    lines = [
        (f"Machine: {_machine()}. Command: `python benchmarks/bench_readme.py{flags}`. "
         "Wall times after the installation; blocks run in order in one process."),
        "",
        "| step | wall time (s) | printed (last lines) |",
        "|---|---|---|",
    ]
    for label, seconds, printed in rows:
        printed = printed.replace("|", "\\|")
        lines.append(f"| {label} | {seconds:.1f} | {printed} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
