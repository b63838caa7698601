"""The image built from the Dockerfile and run as compose.yaml runs it, under podman, against a
real PostgreSQL set up as compose's postgres service would be (see tests/deploy/image.py)."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.deploy import image
from tests.deploy.conftest import ROOT
from tests.helpers import Cluster, free_port, http, item_payload, pg_program, wait_until

# A cold start builds the base root fs and every layer first (about a minute here).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

UID = 10001  # the Dockerfile's USER
# The containers reach the host's loopback, where the test cluster listens, at 10.0.2.2
# (slirp4netns's host address): the database stays off every other interface, and `db` names it
# as in compose.
NETWORK = ["--network=slirp4netns:allow_host_loopback=true", "--add-host=db:10.0.2.2"]


@dataclass
class Stack:
    tag: str
    compose: dict[str, Any]
    env: dict[str, str]  # what .env would set: the password
    cluster: Cluster
    url: str = ""  # the API, published on loopback
    container: str = ""

    def options(self, service: str, port: int | None = None) -> list[str]:
        options = image.run_options(self.compose["services"][service], self.env, port)
        # compose's db:5432 is the test cluster's port here
        return [re.sub(r"@db:5432/", f"@db:{self.cluster.port}/", o) for o in options] + NETWORK

    def one_shot(self, step: str, service: str, command: list[str]) -> str:
        return image.podman(step, "run", "--rm", *self.options(service), self.tag, *command)

    def start_api(self) -> None:
        port = free_port()
        self.container = f"itemsapi-test-{uuid.uuid4().hex[:8]}"
        # No systemd here to run the health check's timer: `podman healthcheck run` runs it.
        image.podman("starting the api container", "run", "--detach", f"--name={self.container}",
                     "--health-interval=disable", *self.options("api", port), self.tag)  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http("GET", f"{self.url}/ready").status == 200, 60,
                   "the container's /ready", interval=0.5)  # fmt: skip

    def logs(self) -> str:
        logs = subprocess.run(["podman", "logs", self.container], capture_output=True,
                              text=True, env=image.podman_env(), check=False)  # fmt: skip
        return logs.stdout + logs.stderr

    def token(self) -> str:
        """As the README says: `itemsapi keys create` in the api service; the token is the last
        line it prints."""
        out = self.one_shot("creating a key in the container", "api",
                            ["itemsapi", "keys", "create", "--name", "image-test",
                             "--scopes", "read,write"])  # fmt: skip
        return out.strip().splitlines()[-1]


def compose_database(root: Path, password: str) -> Cluster:
    """What compose's postgres service starts with: POSTGRES_USER (a superuser, as the postgres
    image makes it) owning POSTGRES_DB, which the mounted sql/init.sql has run in."""
    cluster = Cluster(root, free_port()).init(host_auth="scram-sha-256")
    cluster.start()
    with psycopg.connect(cluster.socket_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE itemsapi SUPERUSER LOGIN PASSWORD '{password}'")
        conn.execute("CREATE DATABASE itemsapi OWNER itemsapi")
    for mount in yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["db"]["volumes"]:
        source, target = mount.split(":")[:2]
        if target.startswith("/docker-entrypoint-initdb.d/"):
            image.run(f"running {source} as the postgres image would", [
                pg_program("psql"), "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-f",
                str(ROOT / source), f"host={cluster.data} port={cluster.port} user=itemsapi"
                " dbname=itemsapi"])  # fmt: skip
    return cluster


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tag = f"localhost/itemsapi-test:{uuid.uuid4().hex[:8]}"
    image.build(tag)
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    password = secrets.token_hex(12)
    cluster = compose_database(tmp_path_factory.mktemp("image-db"), password)
    stack = Stack(tag, compose, {"POSTGRES_PASSWORD": password, "PGADMIN_PASSWORD": "x"}, cluster)
    try:
        command = compose["services"]["migrate"]["command"]
        stack.one_shot("itemsapi migrate (compose's migrate service)", "migrate", command)
        stack.start_api()
        yield stack
    finally:
        subprocess.run(["podman", "rm", "--force", "--time=0", stack.container or "none"],
                       capture_output=True, env=image.podman_env(), check=False)  # fmt: skip
        subprocess.run(["podman", "rmi", tag], capture_output=True, env=image.podman_env(),
                       check=False)  # fmt: skip
        cluster.stop()


def test_probes_answer(stack: Stack):
    for path in ("/live", "/ready", "/health"):
        response = http("GET", stack.url + path)
        assert response.status == 200, (path, response.body, stack.logs())


def test_the_images_healthcheck_passes(stack: Stack):
    # podman runs the HEALTHCHECK's own command, as the image's user, inside the container
    health = json.loads(image.podman("reading the image", "image", "inspect", stack.tag))
    assert "/ready" in " ".join(health[0]["Healthcheck"]["Test"])  # kept: docker format
    assert image.podman("podman healthcheck run", "healthcheck", "run", stack.container) == ""


def test_crud_with_a_key_made_in_the_container(stack: Stack):
    auth = {"Authorization": f"Bearer {stack.token()}"}
    created = http("POST", f"{stack.url}/v1/items", item_payload(name="in a box"), auth)
    assert created.status == 201, created.body
    location = f"{stack.url}{created.headers['location']}"
    got = http("GET", location, headers=auth)
    assert (got.status, got.json()["name"]) == (200, "in a box")
    merge = {
        **auth,
        "If-Match": got.headers["etag"],
        "Content-Type": "application/merge-patch+json",
    }
    patched = http("PATCH", location, {"quantity": 9}, merge)
    assert (patched.status, patched.json()["quantity"]) == (200, 9), patched.body
    stale = http("PATCH", location, {"quantity": 1}, merge)  # that version is gone
    assert stale.status == 412
    assert http("DELETE", location, headers=auth).status == 204
    assert http("GET", location, headers=auth).status == 404


def test_runs_as_the_images_user_and_writes_only_to_its_tmpfs(stack: Stack):
    # every process of the container, as the kernel sees it from the host
    top = image.podman("podman top", "top", stack.container, "hpid", "args")
    pids = [line.split()[0] for line in top.splitlines()[1:]]
    assert len(pids) >= 2, top  # the server and its worker
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        ids = re.search(r"^Uid:\s+(.*)$", status, re.M)[1].split()
        assert ids == [str(UID)] * 4, (top, status)  # real, effective, saved, file system
    http("POST", f"{stack.url}/v1/items", item_payload(), {"Authorization": "Bearer nope"})
    changed = image.podman("podman diff", "diff", stack.container).splitlines()
    # podman's own setup (the /etc/hosts and /etc/resolv.conf mount points) marks /etc changed:
    # the same container options running `true` are the baseline.
    idle = f"{stack.container}-idle"
    image.podman(
        "an idle container", "run", f"--name={idle}", *stack.options("api"), stack.tag, "true"
    )
    try:
        baseline = image.podman("podman diff", "diff", idle).splitlines()
    finally:
        image.podman("removing the idle container", "rm", idle)
    assert changed == baseline  # the tmpfs (/tmp) is not the container's file system
    mounts = image.podman("listing mounts", "exec", stack.container, "cat", "/proc/mounts")
    writable = [m.split()[1] for m in mounts.splitlines() if " rw," in f" {m.split()[3]},"]
    assert "/" not in writable
    assert "/tmp" in writable


def test_confined_as_compose_says(stack: Stack):
    """What the kernel enforces on the running server: no capabilities, no new privileges, and
    compose's memory, process and CPU limits on its cgroups."""
    limits = stack.compose["services"]["api"]["deploy"]["resources"]["limits"]
    pid = image.podman("the server's pid", "inspect", "--format={{.State.Pid}}", stack.container)
    proc = Path("/proc", pid.strip())
    status = (proc / "status").read_text()
    for field, value in [("CapEff", "0" * 16), ("CapBnd", "0" * 16), ("NoNewPrivs", "1")]:
        assert re.search(rf"^{field}:\s+{value}$", status, re.M), status
    groups = dict(line.split(":")[1:] for line in (proc / "cgroup").read_text().split())

    def cgroup(controller: str, name: str) -> int:
        return int(Path(f"/sys/fs/cgroup/{controller}{groups[controller]}/{name}").read_text())

    assert (
        cgroup("memory", "memory.limit_in_bytes") == int(limits["memory"].removesuffix("m")) << 20
    )
    assert cgroup("pids", "pids.max") == limits["pids"]
    cpus = cgroup("cpu", "cpu.cfs_quota_us") / cgroup("cpu", "cpu.cfs_period_us")
    assert cpus == float(limits["cpus"])


def test_python_packages_are_the_locks(stack: Stack):
    listing = image.podman("listing the image's packages", "run", "--rm", stack.tag, "python",
        "-c", "import importlib.metadata as m;"
        "print('\\n'.join(f'{d.name}=={d.version}' for d in m.distributions()))")  # fmt: skip
    installed = {_normal(line) for line in listing.split()}
    lock = (ROOT / "requirements.txt").read_text()
    locked = {_normal(pin) for pin in re.findall(r"^([\w.-]+==[\w.]+)", lock, re.M)}
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    assert installed == {*locked, f"itemsapi=={version}"}
    size = json.loads(image.podman("reading the image", "image", "inspect", stack.tag))
    print(f"image {stack.tag}: {size[0]['Size'] / 1e6:.0f} MB")


def _normal(pin: str) -> str:
    name, _, version = pin.partition("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


def test_sigterm_stops_it_in_its_grace_period_with_every_acknowledged_write_stored(stack: Stack):
    # Last in the module: it stops the container.
    auth = {"Authorization": f"Bearer {stack.token()}"}
    acknowledged: list[int] = []
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            try:
                response = http("POST", f"{stack.url}/v1/items", item_payload(), auth, timeout=30)
            except OSError:
                time.sleep(0.01)  # refused or reset: the server is going
                continue
            if response.status == 201:
                acknowledged.append(response.json()["id"])

    writers = [threading.Thread(target=write) for _ in range(8)]
    for writer in writers:
        writer.start()
    wait_until(lambda: len(acknowledged) >= 50, 30, "writes before the stop")
    grace = int(stack.compose["services"]["api"]["stop_grace_period"].removesuffix("s"))
    image.podman("podman stop", "stop", f"--time={grace}", stack.container)
    stop.set()
    for writer in writers:
        writer.join(60)
    state = json.loads(image.podman("inspecting the container", "inspect", stack.container))
    # 137 would be podman's SIGKILL once the grace period ran out
    assert state[0]["State"]["ExitCode"] == 0, stack.logs()
    with psycopg.connect(stack.cluster.socket_url.replace("/postgres?", "/itemsapi?")) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM items")}
    print(f"{len(acknowledged)} writes acknowledged, {len(stored)} stored")
    assert set(acknowledged) <= stored
