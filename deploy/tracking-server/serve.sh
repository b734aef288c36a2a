#!/bin/sh
# The team's MLflow tracking server: runs, models and users in PostgreSQL, artifacts proxied by
# the server (clients only speak HTTP), HTTP basic auth, and the settings that keep it lean:
# a few uvicorn workers and no job runner. docker-compose.yml runs it; the tests run it as is.
#
#   MLFLOW_BACKEND_STORE_URI=postgresql://mlflow:PASSWORD@db:5432/mlflow \
#   MLFLOW_AUTH_DATABASE_URI=postgresql://mlflow:PASSWORD@db:5432/mlflow_auth \
#   MLFLOW_ARTIFACTS_DESTINATION=/srv/mlflow/artifacts \
#   MLFLOW_AUTH_ADMIN_PASSWORD=... MLFLOW_FLASK_SERVER_SECRET_KEY=... \
#   deploy/tracking-server/serve.sh --host 0.0.0.0 --port 5000
#
# Arguments are passed on to `mlflow server` after the ones below (a later option wins).
# MLFLOW_ARTIFACTS_DESTINATION may be s3://bucket/prefix (add boto3 to the image).
# MLFLOW_AUTH_ADMIN_PASSWORD creates the `admin` user on the first start only (then rotate it
# with the update-password API). MLFLOW_DEFAULT_PERMISSION (READ): what a signed-in user may do
# with experiments and models that others created. MLFLOW_WORKERS: uvicorn workers (2).
# MLFLOW_AUTH_CACHE_TTL_SECONDS (0): remember a checked password this long in each worker
# instead of hashing it again on every request (~0.3 s of CPU each); a changed or revoked
# password then still works on the other workers until the TTL ends.
# MLFLOW_SERVER_ENABLE_JOB_EXECUTION: the job runner, off unless you use MLflow's async jobs.
set -eu

: "${MLFLOW_BACKEND_STORE_URI:?postgresql://USER:PASSWORD@HOST:5432/DB for runs and models}"
: "${MLFLOW_AUTH_DATABASE_URI:?postgresql://USER:PASSWORD@HOST:5432/DB for users (another DB)}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?a folder or s3://bucket/prefix for artifacts}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?a long random string, the same on every replica}"

# The auth app reads an ini file (in every worker, so it must outlive this script): written
# here from the environment, readable by this user only.
# (`%` is doubled: the ini reader would take it for an interpolation.)
config="${MLFLOW_AUTH_CONFIG_PATH:-${TMPDIR:-/tmp}/mlflow-basic-auth.ini}"
users_uri="$(printf '%s' "$MLFLOW_AUTH_DATABASE_URI" | sed 's/%/%%/g')"
umask 077
cat > "$config" <<INI
[mlflow]
default_permission = ${MLFLOW_DEFAULT_PERMISSION:-READ}
database_uri = ${users_uri}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL_SECONDS:-0}
INI
export MLFLOW_AUTH_CONFIG_PATH="$config"
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"

exec "${MLFLOW:-mlflow}" server \
    --app-name basic-auth \
    --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
    --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
    --workers "${MLFLOW_WORKERS:-2}" \
    "$@"
