# Two images from one file, both with Python 3.11 on Debian bookworm and every Python package at
# the exact version of requirements.lock (no Docker engine runs on our machines: this file is
# checked by hadolint and by tests of its build steps, not built, in CI).
#
# Training and reproduction (the default target; git for lineage and old commits, no server):
#   docker build -t ml-project .
#   docker run --rm -u "$(id -u):$(id -g)" -v "$PWD":/project ml-project train --env staging
#   docker run --rm -u "$(id -u):$(id -g)" -v "$PWD":/project ml-project reproduce --env staging --version 3
# Mount the checkout at /project: its git history, data and MLflow store are used, and its
# code runs (`python -m ml_project` from /project puts the checkout first on sys.path). The
# copy baked in below is the fallback when nothing is mounted.
#
# Online serving of the registry's champion (`ml-project serve`: MLflow's scoring server on port
# 8080, the model loaded with the project's allow-list). The model is `<name>_prod` (the `name:` of the problem's settings); the default is the default problem's:
#   docker build --target serve --build-arg MODEL_URI=models:/<name>_prod@champion \
#       -t ml-project-serve .
#   docker run --rm -p 8080:8080 -e MLFLOW_TRACKING_URI=http://mlflow.internal:5000 \
#       ml-project-serve
# (`-e MODEL_URI=...` at run time overrides the built-in URI.) The model is fetched from the
# registry when the container starts, and a URI naming an alias (@champion) is followed: a newly
# promoted champion that passed the gate is served within seconds (docs/serving.md).
FROM python:3.11-slim-bookworm AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    HOME=/tmp

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


FROM runtime AS serve
ARG MODEL_URI=models:/flights_delay_prod@champion
ENV MODEL_URI=$MODEL_URI \
    SERVING_ENV=prod \
    HOST=0.0.0.0 \
    PORT=8080 \
    SERVING_WORKERS=2
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['PORT']}/ping\", timeout=4)"]
# tests/integration/test_serving.py runs this very command (outside a container) and queries it.
# `ml-project serve` is MLflow's scoring server with the model loaded by the project's allow-list
# (`mlflow models serve` would trust the types the model's own files list); run from /project.
ENTRYPOINT ["sh", "-c", "exec ml-project serve --env \"$SERVING_ENV\" --model-uri \"$MODEL_URI\" --host \"$HOST\" --port \"$PORT\" --workers \"$SERVING_WORKERS\""]

FROM runtime AS train
# git: lineage reads the commit, reproduce checks old commits out. Pinned to bookworm's 2.39
# (the glob keeps Debian's security updates). A mounted checkout belongs to another uid.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

USER 10001:10001
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "ml_project"]
CMD ["--help"]
