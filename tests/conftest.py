"""Shared test configuration: the hypothesis profiles of tests/test_properties.py.

``ci`` (the default) runs a fixed, modest set of examples: derandomised, no example
database, no deadline, so a run is fast and every run draws the same examples.
``dev`` explores: many more examples from a new random seed on each run, for hunting
defects locally (``HYPOTHESIS_PROFILE=dev python -m pytest tests/test_properties.py``).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    # A fit takes 0.05 to 0.5 s: slower than hypothesis expects of a test case.
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", settings.get_profile("ci"), max_examples=1000, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
