"""Safety suites: toxicity, privacy, fairness, jailbreak and over-refusal on bundled data.

The faces of the package are its modules: ``tasks`` (what is asked and how it is read),
``planning`` (settings and the requests it asks), ``score`` (typed results), ``report``
(rebuild the outputs).
This file stays light so that the command line names the suites without loading them.
"""

from psyprobe.safety.items import SUITES

__all__ = ["SUITES"]
