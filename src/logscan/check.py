"""``logscan check``: what can be verified before a run, beyond the configuration's own validity.

(Configuration errors are raised by ``load_config`` already; this adds checks that need the
filters compiled or the file system looked at.)
"""

from __future__ import annotations

from .config import Config
from .errors import ConfigProblem
from .sources.files import expand_globs


def check_config(config: Config) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for jail in config.jails:
        if jail.logpaths and not expand_globs(jail.logpaths):
            problems.append(
                ConfigProblem(
                    str(config.path),
                    f"jails.{jail.name}.logpath",
                    "no file matches (yet): " + ", ".join(jail.logpaths),
                )
            )
    return problems
