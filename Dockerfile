# The software that trains and reproduces the model: Python 3.11 on Debian bookworm, git, and
# every Python package at the exact version of requirements.lock. It is the training/reproduce
# image; it runs no server, so it has no healthcheck (the serving image is separate).
#
#   docker build -t ml-project .
#   docker run --rm -u "$(id -u):$(id -g)" -v "$PWD":/project ml-project train --env staging
#   docker run --rm -u "$(id -u):$(id -g)" -v "$PWD":/project ml-project reproduce --env staging --version 3
#
# Mount the checkout at /project: its git history, data and MLflow store are used, and its
# code runs (`python -m ml_project` from /project puts the checkout first on sys.path). The
# copy baked in below is the fallback when nothing is mounted.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    HOME=/tmp

# git: lineage reads the commit, reproduce checks old commits out. Pinned to bookworm's 2.39
# (the glob keeps Debian's security updates). A mounted checkout belongs to another uid.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

RUN useradd --create-home --uid 10001 --user-group ml

WORKDIR /project
# The runtime dependencies of pyproject.toml first, each constrained to its locked version:
# this layer stays cached while only the code changes.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/runtime.txt \
    && pip install --no-cache-dir -c requirements.lock -r /tmp/runtime.txt \
    && rm /tmp/runtime.txt

# Then the project itself (no new dependency may sneak in: --no-deps, then pip check).
COPY --chown=10001:10001 . ./
RUN pip install --no-cache-dir --no-deps -c requirements.lock . \
    && pip check

USER 10001:10001
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "ml_project"]
CMD ["--help"]
