"""The embedded PostgreSQL's URLs: its Unix socket when the socket path fits, else loopback TCP with a password."""

from __future__ import annotations

from pathlib import Path

from services.common.embedded import SOCKET_DIR_MAX, EmbeddedPostgres


def test_a_short_data_directory_is_reached_through_its_socket_by_each_role() -> None:
    server = EmbeddedPostgres(data_dir=Path("/tmp/casefeedback-pg-abc"), port=5433)
    assert server.service_url == ("postgresql://casefeedback_service@/casefeedback"
                                  "?host=/tmp/casefeedback-pg-abc&port=5433")
    assert server.url == "postgresql://casefeedback_owner@/casefeedback?host=/tmp/casefeedback-pg-abc&port=5433"


def test_a_data_directory_too_long_for_a_socket_path_falls_back_to_tcp_with_a_password() -> None:
    server = EmbeddedPostgres(data_dir=Path("/" + "d" * SOCKET_DIR_MAX), port=5433)
    password = server.passwords["casefeedback_service"]
    assert len(password) >= 32
    assert server.service_url == f"postgresql://casefeedback_service:{password}@127.0.0.1:5433/casefeedback"
    assert password not in repr(server)
