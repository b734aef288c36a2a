"""Write conda.yaml from requirements.lock, so `mlflow run` gets the exact pins CI uses."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    pins = [
        line.strip()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    lines = [
        "# Generated from requirements.lock by .ci/conda_env.py (make lock): do not edit.",
        "name: ml-project",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
        *[f"      - {pin}" for pin in pins],
    ]
    (ROOT / "conda.yaml").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
