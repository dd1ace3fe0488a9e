"""docker-compose.yaml, Dockerfile and .env.example hang together, checked without a Docker engine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devtools.distributed import POOLS, sandbox_connections

REPO = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (REPO / "docker-compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
]
SANDBOX_SERVICES = ["sandbox", "sandbox-connections", "mail-sink"]
SECRETS = [
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW_CONN_SALESFORCE_DEFAULT",
    "AIRFLOW_CONN_SURVEYMONKEY_DEFAULT",
    "AIRFLOW_CONN_SMTP_DEFAULT",
    "AIRFLOW_CONN_CLOSED_LOOP_DB",
]


def _env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip().strip("'") for key, value in pairs}


def test_every_component_of_the_official_layout_is_there():
    expected = {"postgres", "redis", "airflow-init", "flower", *AIRFLOW_SERVICES, *SANDBOX_SERVICES}
    assert expected <= set(SERVICES)
    assert SERVICES["flower"]["profiles"] == ["flower"]


@pytest.mark.parametrize("name", ["airflow-init", *AIRFLOW_SERVICES])
def test_airflow_services_share_the_built_image_and_celery(name):
    service = SERVICES[name]
    assert service["build"] == "."
    env = service["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert (
        env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
        or "@redis:" in env["AIRFLOW__CELERY__BROKER_URL"]
    )
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    for secret in SECRETS:
        assert env[secret] == f"${{{secret}}}", f"{name}: {secret} comes from .env"


@pytest.mark.parametrize("name", ["postgres", "redis", *AIRFLOW_SERVICES])
def test_long_running_services_have_healthchecks(name):
    check = SERVICES[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) >= 2


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_wait_for_init_and_healthy_backends(name):
    deps = SERVICES[name]["depends_on"]
    assert deps["airflow-init"]["condition"] == "service_completed_successfully"
    assert deps["postgres"]["condition"] == "service_healthy"
    assert deps["redis"]["condition"] == "service_healthy"


def test_worker_waits_for_a_healthy_api_server():
    assert SERVICES["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"


def test_init_migrates_creates_the_api_pools_and_the_ledger_schema():
    script = "\n".join(SERVICES["airflow-init"]["command"])
    assert "airflow db migrate" in script
    for pool in POOLS:
        assert re.search(rf"airflow pools set {pool}\b", script), pool
    assert "Ledger.from_conn_id" in script and ".migrate()" in script
    assert "simple_auth_manager_passwords.json" in script


def test_every_interpolated_variable_is_listed_in_env_example():
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_TEXT))
    listed = set(_env_example())
    assert used - listed == set()
    assert set(SECRETS) <= used


def test_env_example_holds_placeholders_not_secrets():
    env = _env_example()
    for key, value in env.items():
        if any(word in key for word in ("PASSWORD", "SECRET", "FERNET")):
            assert value == "" or value.startswith("change-me"), key
    for key in [k for k in env if k.startswith("AIRFLOW_CONN_")]:
        assert "change-me" in env[key], f"{key} has a placeholder credential"
    ledger_pw = env["LEDGER_DB_PASSWORD"]
    assert f":{ledger_pw}@postgres:5432/closed_loop" in env["AIRFLOW_CONN_CLOSED_LOOP_DB"]


def test_ledger_has_its_own_database_created_on_first_start():
    mounts = SERVICES["postgres"]["volumes"]
    assert "./docker/postgres-init:/docker-entrypoint-initdb.d:ro" in mounts
    init = (REPO / "docker" / "postgres-init" / "10-ledger-db.sh").read_text()
    assert "CREATE DATABASE closed_loop" in init
    assert SERVICES["postgres"]["environment"]["POSTGRES_DB"] != "closed_loop"


def test_bind_mounts_exist_and_code_is_read_only():
    mounts = [m for s in SERVICES.values() for m in s.get("volumes", []) if m.startswith("./")]
    assert mounts
    for mount in mounts:
        source, target, *mode = mount.split(":")
        assert (REPO / source).is_dir(), f"{source} is missing from the repository"
        if source in ("./dags", "./plugins", "./include"):
            assert mode == ["ro"], f"{mount} is mounted read-only"
    targets = {m.split(":")[1] for m in SERVICES["airflow-worker"]["volumes"]}
    assert {
        "/opt/airflow/dags",
        "/opt/airflow/plugins",
        "/opt/airflow/include",
        "/opt/airflow/logs",
    } <= targets
    assert set(COMPOSE["volumes"]) >= {"airflow-logs", "postgres-db-volume", "closed-loop-state"}


def test_dockerfile_extends_airflow_3_3_and_installs_the_pinned_requirements():
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.M).group(1)
    assert re.fullmatch(r"apache/airflow:3\.3\.\d+-python3\.11", base), base
    pinned = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert base.split(":")[1].startswith(pinned), "image and requirements.txt agree on Airflow"
    assert "COPY requirements.txt" in dockerfile
    assert re.search(rf'pip install .*"apache-airflow=={re.escape(pinned)}" -r /requirements.txt', dockerfile)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".git"} <= set(ignored)


def test_sandbox_profile_is_a_complete_trial():
    for name in SANDBOX_SERVICES:
        assert SERVICES[name]["profiles"] == ["sandbox"], name
    assert "python -m sandbox" in SERVICES["sandbox"]["command"][-1]
    assert "--port 8443" in SERVICES["sandbox"]["command"][-1]
    assert "devtools.mail_sink" in SERVICES["mail-sink"]["command"][-1]
    deps = SERVICES["sandbox-connections"]["depends_on"]
    assert deps["sandbox"]["condition"] == "service_healthy"
    common_env = SERVICES["airflow-worker"]["environment"]
    assert common_env["AIRFLOW__SECRETS__BACKEND"].endswith("LocalFilesystemBackend")
    assert "/opt/airflow/state/connections.json" in common_env["AIRFLOW__SECRETS__BACKEND_KWARGS"]
    # a service of the default profile must never depend on an optional one
    for name, service in SERVICES.items():
        if "profiles" not in service:
            assert not set(service.get("depends_on") or {}) & set(SANDBOX_SERVICES), name


def test_sandbox_connections_point_the_containers_at_the_sandbox_service():
    info = {
        "airflow_conn_env": {
            "AIRFLOW_CONN_SURVEYMONKEY_DEFAULT": json.dumps(
                {
                    "conn_type": "surveymonkey",
                    "host": "https://127.0.0.1:8443/v3",
                    "password": "tok",
                    "extra": {"ca_bundle": "/opt/airflow/state/ca.pem"},
                }
            ),
            "AIRFLOW_CONN_SALESFORCE_DEFAULT": "salesforce://?instance_url=https%3A%2F%2Flocalhost%3A8443",
        }
    }
    conns = sandbox_connections(info, "sandbox", smtp="mail-sink:1025")
    sm = conns["surveymonkey_default"]
    assert sm["host"] == "https://sandbox:8443/v3"
    assert sm["extra_dejson"] == {"ca_bundle": "/opt/airflow/state/ca.pem"}
    assert conns["salesforce_default"] == "salesforce://?instance_url=https%3A%2F%2Flocalhost%3A8443"
    assert conns["smtp_default"]["host"] == "mail-sink" and conns["smtp_default"]["port"] == 1025
    with pytest.raises(ValueError, match="airflow_conn_env"):
        sandbox_connections({}, "sandbox")


def test_docker_compose_config_accepts_the_file(tmp_path):
    """Debian's docker-compose (v1) or the compose plugin parses and interpolates without an engine."""
    if shutil.which("docker-compose"):
        cmd = ["docker-compose"]
    elif (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        cmd = ["docker", "compose"]
    else:
        pytest.skip("no docker-compose binary (scripts/ensure-compose.sh installs Debian's docker-compose)")
    for profile in ([], ["--profile", "sandbox"]):
        proc = subprocess.run(
            [*cmd, "--env-file", ".env.example", *profile, "config"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1800,  # hang guard
        )
        assert proc.returncode == 0, proc.stderr
        rendered = yaml.safe_load(proc.stdout)
        worker_env = rendered["services"]["airflow-worker"]["environment"]
        assert worker_env["AIRFLOW__API_AUTH__JWT_SECRET"] == _env_example()["AIRFLOW__API_AUTH__JWT_SECRET"]
        assert "variable is not set" not in proc.stderr, proc.stderr


def test_webhook_receiver_holds_no_api_credentials_and_shares_the_channel():
    receiver = SERVICES["webhook-receiver"]
    assert receiver["profiles"] == ["webhooks"]
    env = receiver["environment"]
    assert set(env) == {
        "AIRFLOW_CONN_SURVEYMONKEY_WEBHOOK",
        "AIRFLOW_CONN_REDIS_DEFAULT",
        "CLOSED_LOOP_WEBHOOK_CHANNEL",
        "PYTHONPATH",
    }, "no Salesforce/SurveyMonkey API token, no metadata DB"
    assert not any("state" in v for v in receiver.get("volumes", [])), "no access to the connections file"
    airflow_env = SERVICES["airflow-triggerer"]["environment"]
    assert airflow_env["CLOSED_LOOP_WEBHOOK_CHANNEL"] == env["CLOSED_LOOP_WEBHOOK_CHANNEL"]
    assert airflow_env["AIRFLOW_CONN_REDIS_DEFAULT"] == env["AIRFLOW_CONN_REDIS_DEFAULT"]
    assert airflow_env["CLOSED_LOOP_INTAKE_TRIGGER"] == "${CLOSED_LOOP_INTAKE_TRIGGER:-polling}"
