"""A 'deploy code' MLOps template: one training codebase, retrained in dev, staging and prod."""

__version__ = "0.1.0"
