"""The image's start command and health check, run outside Docker (no engine here).

The files the Dockerfile copies are staged in a temporary folder; its CMD and HEALTHCHECK run
there with the image's environment, on SQLite, against a real uvicorn process.
"""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

from api import PROJECT_ROOT
from tests.conftest import free_port, wait_ready

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")


def _instruction(name: str) -> str:
    """The last `name` instruction of the final stage, continuation lines joined."""
    joined = DOCKERFILE.replace("\\\n", " ")
    return re.findall(rf"^{name}\s+(.*)$", joined, flags=re.MULTILINE)[-1]


def _stage(target: Path) -> None:
    final_stage = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    for source, _destination in re.findall(r"^COPY (?!--from)(\S+) (\S+)$", final_stage, re.M):
        path = PROJECT_ROOT / source
        if path.is_dir():
            subprocess.run(["cp", "-r", str(path), str(target / path.name)], check=True)
        else:
            subprocess.run(["cp", str(path), str(target / path.name)], check=True)


def test_image_start_command_migrates_seeds_serves_and_passes_its_healthcheck(
    tmp_path: Path,
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    _stage(app_dir)
    (app_dir / "data").mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(app_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{app_dir / 'data' / 'cdmo-metrics.db'}",
    }
    command = json.loads(_instruction("CMD"))
    server = subprocess.Popen(command, cwd=app_dir, env=env, stdout=subprocess.PIPE, text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        metrics = httpx.get(f"http://127.0.0.1:{port}/v1/metrics").json()
        assert metrics["total"] == 42
        healthcheck = _instruction("HEALTHCHECK").split("CMD", 1)[1].strip()
        check = subprocess.run(json.loads(healthcheck), env=env, timeout=10)
        assert check.returncode == 0
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert "metrics              +42 ~0 -0 =0" in output, shlex.quote(output)


def test_compose_runs_two_api_instances_behind_a_proxy_on_one_postgres() -> None:
    import yaml

    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"postgres", "api1", "api2", "proxy"} <= set(services)
    for name in ("api1", "api2"):
        assert services[name]["build"] == "."
        assert services[name]["environment"]["DATABASE_URL"].startswith(
            "postgresql+psycopg://cdmo:cdmo@postgres:5432/"
        )
    assert "--to api1:8000 --to api2:8000" in services["proxy"]["command"]
    # Each client counts as itself behind the proxy (exports, failed authentications).
    assert services["api1"]["environment"]["FORWARDED_ALLOW_IPS"] == "*"
    assert "ports" not in services["api1"]  # only the proxy reaches the instances
    assert _instruction("VOLUME") == '["/app/data"]'  # the SQLite database outlives a container
    assert "--uid 10001 --gid 10001" in DOCKERFILE and "HEALTHCHECK" in DOCKERFILE
    assert _instruction("USER") == "10001:10001"  # numeric, so Kubernetes can check non-root
    assert DOCKERFILE.count("FROM ") == 2  # build stage, then a final stage without build tools
