"""The embedded PostgreSQL's URL: its Unix socket when the socket path fits, else loopback TCP."""

from __future__ import annotations

from pathlib import Path

from services.common.embedded import SOCKET_DIR_MAX, EmbeddedPostgres


def test_a_short_data_directory_is_reached_through_its_socket() -> None:
    server = EmbeddedPostgres(data_dir=Path("/tmp/casefeedback-pg-abc"), port=5433)
    assert server.url == "postgresql://postgres@/casefeedback?host=/tmp/casefeedback-pg-abc&port=5433"


def test_a_data_directory_too_long_for_a_socket_path_falls_back_to_tcp() -> None:
    server = EmbeddedPostgres(data_dir=Path("/" + "d" * SOCKET_DIR_MAX), port=5433)
    assert server.url == server.tcp_url == "postgresql://postgres@127.0.0.1:5433/casefeedback"
