"""Servers that are down are reported in seconds, with their address."""

from __future__ import annotations

import socket

import pytest

from tasks.tracking import ServerUnavailable, connect


def test_mlflow_server_down_is_named_before_any_work(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    with pytest.raises(ServerUnavailable, match=f"127.0.0.1:{port}.*make up"):
        connect()
