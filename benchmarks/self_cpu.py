"""`ml-project ARGS` in this process, then one JSON line: the CPU seconds of this process alone
and of the children it waited for (`predict`'s model-input checks, forked beside the scoring).

    python benchmarks/self_cpu.py predict --env prod --input records.parquet --output s.parquet

On an idle machine a command's wall time follows its own process's CPU when its children run
on another core: the split says what bounds it.
"""

from __future__ import annotations

import atexit
import json
import resource
import sys


def report() -> None:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "self_cpu_s": own.ru_utime + own.ru_stime,
                "children_cpu_s": children.ru_utime + children.ru_stime,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    atexit.register(report)
    sys.argv = ["ml-project", *sys.argv[1:]]
    from ml_project.cli import main

    main()
