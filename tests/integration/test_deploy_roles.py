"""deploy/: each container holds its own role's credential and no other; the init script creates every role."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

DEPLOY = Path(__file__).parents[2] / "deploy"
SERVICES = ("intake", "escalation", "learning", "metrics", "relay")
ROLES = ("intake", "escalation", "learning", "metrics", "relay", "erasure", "reader")


def test_each_deployed_service_gets_only_its_own_roles_url() -> None:
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    for name in SERVICES:
        env, secrets = services[name]["environment"], services[name]["secrets"]
        urls = {k: v for k, v in env.items() if "DATABASE_URL" in k}
        assert urls == {f"CASEFEEDBACK_{name.upper()}_DATABASE_URL_FILE": f"/run/secrets/{name}_database_url"}, name
        assert secrets == [f"{name}_database_url"], name
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    migrate = services["migrate"]
    assert migrate["environment"] == {"CASEFEEDBACK_MIGRATION_DATABASE_URL_FILE": "/run/secrets/migration_database_url"}


def test_make_secrets_writes_one_url_per_role_with_that_roles_password_only(tmp_path: Path) -> None:
    script = tmp_path / "make-secrets.sh"
    shutil.copy(DEPLOY / "make-secrets.sh", script)
    subprocess.run(["sh", str(script)], check=True, capture_output=True, timeout=30)
    secrets = tmp_path / "secrets"
    passwords = {role: (secrets / f"{role}_password").read_text().strip()
                 for role in (*ROLES, "owner", "service")}
    assert len(set(passwords.values())) == len(passwords)  # no two roles share a password
    for role in ROLES:
        url = (secrets / f"{role}_database_url").read_text()
        assert url.startswith(f"postgresql://casefeedback_{role}:{passwords[role]}@postgres:5432/")
        assert not any(p in url for other, p in passwords.items() if other != role)
    subprocess.run(["sh", str(script)], check=True, capture_output=True, timeout=30)
    assert (secrets / "metrics_password").read_text().strip() == passwords["metrics"]  # kept


def test_the_init_script_creates_every_role_the_migrations_grant() -> None:
    script = (DEPLOY / "postgres" / "init-roles.sh").read_text()
    migration = (Path(__file__).parents[2] / "services/common/migrations/020_roles_per_job.sql").read_text()
    for role in (*ROLES, "owner", "service"):
        assert f"CREATE ROLE casefeedback_{role} LOGIN PASSWORD :'{role}_password';" in script, role
        assert role == "owner" or f"casefeedback_{role}" in migration, role
    assert "TEMPORARY" not in script  # no role may create temporary objects
    postgres = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["postgres"]
    assert {f"{role}_password" for role in (*ROLES, "owner", "service")} <= set(postgres["secrets"])
