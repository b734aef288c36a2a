"""`python paused_gate.py FOLDER ARGS...`: `ml-project ARGS...` as a job cut off from the store:
its heartbeat is never renewed, and its gate, once the verdict is reached and before it is
written, waits (FOLDER/paused written) until FOLDER/go exists. Meanwhile another machine can
take the job for dead and settle its version."""

import contextlib
import runpy
import sys
import time
from pathlib import Path
from typing import Any

from ml_project import heartbeat, promotion

TIMEOUT = 300


def main() -> None:
    folder = Path(sys.argv[1])
    judge = promotion.judge

    def judge_then_wait(*args: Any, **kwargs: Any) -> Any:
        verdict = judge(*args, **kwargs)
        (folder / "paused").touch()
        deadline = time.monotonic() + TIMEOUT
        while not (folder / "go").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the test never said go")
            time.sleep(0.05)
        return verdict

    promotion.judge = judge_then_wait
    heartbeat.beating = lambda *args, **kwargs: contextlib.nullcontext()
    sys.argv = ["ml-project", *sys.argv[2:]]
    runpy.run_module("ml_project", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
