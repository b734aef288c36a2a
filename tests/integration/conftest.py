"""Fixtures for the integration tests: a real MLflow tracking server."""

from __future__ import annotations

import pytest

from tests.integration.tracking_server import TrackingServer, start_tracking_server


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory) -> TrackingServer:
    """A fresh `mlflow server` per test module (sqlite + proxied artifacts), stopped by PID."""
    server = start_tracking_server(tmp_path_factory.mktemp("tracking-server"))
    try:
        yield server
    finally:
        server.stop()
