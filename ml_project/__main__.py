"""`python -m ml_project` is the same as the `ml-project` command."""

from ml_project.cli import main

if __name__ == "__main__":
    main()
