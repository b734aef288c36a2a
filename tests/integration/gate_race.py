"""`python gate_race.py FOLDER ARGS...`: `ml-project ARGS...`, except that its first move of the
champion alias waits until PARTIES processes have reached theirs (each leaves a file in FOLDER).
Concurrent trainings then all judge against the same champion and race to move it, every run.
Setting the champion alias takes WINDOW seconds more, so that without the promotion lock the
racers would both read the old champion and both move it (the lock must make one wait)."""

import os
import runpy
import sys
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from ml_project import registry
from ml_project.vocabulary import CHAMPION

PARTIES = 2
TIMEOUT = 300
WINDOW = 1.0


def rendezvous(folder: Path) -> None:
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + TIMEOUT
    while len(list(folder.iterdir())) < PARTIES:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{PARTIES} processes did not reach the champion move together")
        time.sleep(0.05)


def main() -> None:
    folder = Path(sys.argv[1])
    move_alias = registry.move_alias
    waited = False

    def move_together(client: Any, model_name: str, alias: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal waited
        if alias == CHAMPION and not waited:
            waited = True
            rendezvous(folder)
        return move_alias(client, model_name, alias, *args, **kwargs)

    set_alias = MlflowClient.set_registered_model_alias

    def set_slowly(client: MlflowClient, name: str, alias: str, version: str) -> None:
        if alias == CHAMPION:
            time.sleep(WINDOW)
        set_alias(client, name, alias, version)

    registry.move_alias = move_together
    MlflowClient.set_registered_model_alias = set_slowly
    sys.argv = ["ml-project", *sys.argv[2:]]
    runpy.run_module("ml_project", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
