"""The project's image built and run for real under podman (no Docker engine or registry here).

The official python image cannot be pulled, so its stand-in is a Debian bookworm root file system
(bookworm's python3 is 3.11, as the locks are) made by mmdebstrap and imported under the
Dockerfile's base image name; the Dockerfile itself is built unchanged. Each step that cannot run
fails the test naming the step and the Debian package it needs (`make tools` installs them).
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import ROOT, dockerfile_instructions

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "itemsapi-image"
PACKAGES = {  # program -> the Debian package that provides it
    "podman": "podman", "runc": "runc", "slirp4netns": "slirp4netns",
    "newuidmap": "uidmap", "mmdebstrap": "mmdebstrap",
}  # fmt: skip
MIRRORS = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
# This machine's extra certificate authorities: pip in the build stage reaches PyPI only through
# them here. Only the stand-in base trusts them; the Dockerfile never depends on them.
EXTRA_CAS = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
BASE_RECIPE = [
    "--variant=minbase",
    "--format=tar",  # whatever the file name says
    "--include=python3,python3-venv,python3-pip,ca-certificates",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    *[f"--customize-hook=copy-in {ca} /usr/local/share/ca-certificates/" for ca in EXTRA_CAS],
    '--customize-hook=chroot "$1" update-ca-certificates',
    # What the official image has and Debian's layout lacks: python and pip in /usr/local/bin,
    # and no PEP 668 marker (its pip installs into the system Python).
    '--customize-hook=ln -s /usr/bin/python3 "$1/usr/local/bin/python"',
    '--customize-hook=ln -s /usr/bin/pip3 "$1/usr/local/bin/pip"',
    '--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
]  # fmt: skip
BASE_CONFIG = [
    "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
]


def run(step: str, command: list[str], timeout: float = 300, **kwargs: Any) -> str:
    """Run one step; its failure fails the test with the step's name and output."""
    program = command[0]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=podman_env(),
            check=False, **kwargs,
        )  # fmt: skip
    except FileNotFoundError:
        package = PACKAGES.get(program, program)
        pytest.fail(f"{step}: {program} is missing: install Debian's {package} (`make tools`)")
    except subprocess.TimeoutExpired:
        pytest.fail(f"{step} took over {timeout}s: {' '.join(command)}")
    if result.returncode != 0:
        pytest.fail(
            f"{step} failed (exit {result.returncode}): {' '.join(command)}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def podman(step: str, *args: str) -> str:
    return run(step, ["podman", *args])


def podman_env() -> dict[str, str]:
    """podman with a configuration of the test's own (the machine's stays as it is): runc, as
    crun fails on setrlimit and this machine's hybrid cgroup layout; cgroupfs and file events, as
    no systemd runs here; soft and hard ulimits equal and within this process's hard ones, as
    without CAP_SYS_RESOURCE (this machine's case) runc may not raise either."""
    nofile = min(20000, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    nproc = min(4096, resource.getrlimit(resource.RLIMIT_NPROC)[1])
    limit = [f"nofile={nofile}:{nofile}", f"nproc={nproc}:{nproc}"]
    conf = CACHE / "containers.conf"
    text = (
        f"[containers]\ndefault_ulimits = {limit!r}\n".replace("'", '"')
        + '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    if not conf.exists() or conf.read_text() != text:
        conf.write_text(text)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def base_image() -> str:
    arg = next(a for n, a in dockerfile_instructions() if n == "ARG" and "PYTHON_IMAGE=" in a)
    return arg.partition("=")[2]


def base_key() -> str:
    """Changes with anything that makes the base: the recipe, the mirrors, the CAs' contents."""
    digest = hashlib.sha256(repr((BASE_RECIPE, MIRRORS, BASE_CONFIG)).encode())
    for ca in EXTRA_CAS:
        digest.update(ca.read_bytes())
    return digest.hexdigest()[:16]


def ensure_base() -> str:
    """The stand-in base image, built once per key: the root file system is kept in CACHE, and
    imported again only when podman's copy is missing or was made from another key."""
    name, key = base_image(), base_key()
    found = subprocess.run(
        ["podman", "image", "inspect", name, "--format", '{{index .Labels "itemsapi.base"}}'],
        capture_output=True, text=True, env=podman_env(), check=False,
    )  # fmt: skip
    if found.returncode == 0 and found.stdout.strip() == key:
        return name
    tarball = CACHE / f"base-{key}.tar"
    if not tarball.exists():
        partial = tarball.with_suffix(f".{os.getpid()}.partial")
        run("building the base root fs (mmdebstrap)",
            ["mmdebstrap", *BASE_RECIPE, "bookworm", str(partial), *MIRRORS],
            stdin=subprocess.DEVNULL)  # fmt: skip
        partial.replace(tarball)
    changes = [f"--change={c}" for c in [*BASE_CONFIG, f"LABEL itemsapi.base={key}"]]
    podman("importing the base root fs", "import", *changes, str(tarball), name)
    return name


def build(tag: str) -> None:
    """The Dockerfile as users build it; docker format keeps its HEALTHCHECK (OCI has none)."""
    for program, package in PACKAGES.items():
        if not shutil.which(program, path="/usr/bin:/usr/sbin:/bin:/sbin"):
            pytest.fail(f"{program} is missing: install Debian's {package} (`make tools`)")
    ensure_base()
    podman("building the Dockerfile", "build", "--pull=never", "--format=docker", f"--tag={tag}",
           str(ROOT))  # fmt: skip


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error} against `env`."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        assert op != ":?", f"compose needs {name}: {arg}"
        return arg or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def dotenv(path: Path) -> dict[str, str]:
    """The NAME=value lines a compose env_file sets (commented ones set nothing)."""
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {k: v for k, _, v in pairs if re.fullmatch(r"[A-Z][A-Z0-9_]*", k)}


def run_options(service: dict[str, Any], env: dict[str, str], port: int | None) -> list[str]:
    """`podman run` options for a compose service: its environment (env_file, then environment,
    which wins), its port on 127.0.0.1:`port`, and its confinement and limits."""
    options = []
    values: dict[str, str] = {}
    for entry in service.get("env_file", []):
        values.update(dotenv(ROOT / ".env.example"))  # `.env` is a copy of it, passwords set
        values.update({k: env[k] for k in values if env.get(k)})
        assert entry["path"] == ".env"
    values.update({k: interpolate(str(v), env) for k, v in service["environment"].items()})
    options += [f"--env={k}={v}" for k, v in values.items()]
    for mapping in service.get("ports", []) if port else []:  # `compose run` publishes none
        host, _, container = interpolate(mapping, env).rpartition(":")
        assert host.startswith("127.0.0.1:"), mapping  # published on loopback only
        options.append(f"--publish=127.0.0.1:{port}:{container}")
    if service.get("read_only"):
        # Docker's read-only root has no tmpfs but those asked for; podman's adds /tmp, /run
        # and /var/tmp unless told not to.
        options += ["--read-only", "--read-only-tmpfs=false"]
    options += [f"--cap-drop={cap}" for cap in service.get("cap_drop", [])]
    options += [
        f"--security-opt={o.removesuffix(':true')}" for o in service.get("security_opt", [])
    ]
    options += [f"--tmpfs={mount}" for mount in service.get("tmpfs", [])]
    limits = service["deploy"]["resources"]["limits"]
    options += [f"--memory={limits['memory']}", f"--pids-limit={limits['pids']}",
                f"--cpus={limits['cpus']}"]  # fmt: skip
    if "user" in service:
        options.append(f"--user={service['user']}")
    return options
