"""compose.prod.yaml and its nginx: dclint, nginx's own configuration check (`nginx -t`, Debian's
nginx from `make tools`, with a throwaway certificate where the secrets would be), and the
properties production relies on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import NGINX_CONF, ROOT
from tests.helpers import make_certificate, require_program


@pytest.fixture(scope="module")
def prod() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.prod.yaml").read_text())


def nginx_check(conf_text: str, folder: Path) -> subprocess.CompletedProcess:
    """`nginx -t` on the configuration, its secrets (/run/secrets) replaced by a fresh
    self-signed certificate in `folder`."""
    nginx = require_program("nginx")
    make_certificate(folder)
    conf = folder / "nginx.conf"
    conf.write_text(conf_text.replace("/run/secrets/", f"{folder}/"))
    return subprocess.run(
        [nginx, "-t", "-c", str(conf), "-p", str(folder), "-e", "stderr"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_nginx_accepts_the_proxy_configuration(tmp_path):
    text = NGINX_CONF.read_text()
    result = nginx_check(text, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    broken = nginx_check(text.replace("limit_req zone=per_client", "limit_req zone=nowhere"),
                         tmp_path)  # fmt: skip
    assert broken.returncode != 0  # the check reads what it is given


def test_the_proxy_terminates_tls_and_limits_size_and_rate_per_client():
    text = NGINX_CONF.read_text()
    assert re.search(r"listen 8443 ssl;", text)
    assert re.search(r"client_max_body_size 1m;", text)
    assert re.search(r"limit_req_zone \$binary_remote_addr zone=per_client:\S+ rate=\d+r/s;", text)
    assert "limit_req zone=per_client" in text
    assert "limit_req_status 429;" in text
    assert re.search(r"return 308 https://", text)


def test_only_the_proxy_is_published_and_pgadmin_is_left_out(prod):
    services = prod["services"]
    assert set(services) == {"api", "db", "migrate", "proxy"}
    assert [name for name, s in services.items() if "ports" in s] == ["proxy"]
    proxy = services["proxy"]
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert set(proxy["secrets"]) == {"tls_certificate", "tls_key"}
    assert proxy["read_only"] is True
    assert proxy["cap_drop"] == ["ALL"]


def test_the_image_by_tag_and_secrets_from_files(prod):
    services = prod["services"]
    for name in ("api", "migrate"):
        assert services[name]["image"].startswith("${ITEMSAPI_IMAGE:?")
        assert "build" not in services[name]
        env = services[name]["environment"]
        assert env["ITEMSAPI_DATABASE_PASSWORD_FILE"] == "/run/secrets/postgres_password"
        assert ":" not in env["DATABASE_URL"].split("@")[0].removeprefix("postgresql://")
        assert services[name]["secrets"] == ["postgres_password"]
    db = services["db"]
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "POSTGRES_PASSWORD" not in db["environment"]
    assert all("file" in secret for secret in prod["secrets"].values())
    text = (ROOT / "compose.prod.yaml").read_text()
    assert "PASSWORD:" not in text.replace("PASSWORD_FILE:", "")


def test_migrate_is_a_one_shot_the_api_waits_for(prod):
    migrate, api = prod["services"]["migrate"], prod["services"]["api"]
    assert migrate["command"] == ["itemsapi", "migrate", "--wait", "60"]
    assert migrate["restart"] == "no"
    assert api["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
