"""The developer's path through pgAdmin, without Docker: pgAdmin (the image's release, from
.venv-pgadmin) in desktop mode with compose.yaml's settings, deploy/pgadmin/servers.json, the
passfile written by compose's own command, and a PostgreSQL that requires a password."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql as pgsql

from tests.deploy.pgadmin_harness import Browser, PgAdmin, servers_json, write_passfile
from tests.e2e.browser import FLAGS, chromium
from tests.helpers import Cluster, apply_baseline, free_port

pytestmark = pytest.mark.slow

# pgpass needs both `:` and `\` escaped; the rest is what a shell must not mangle.
PASSWORD = "pa:ss\\w rd$HOME'\"!"
ITEMS = ["Widget", "Gadget", "Gizmo"]
DESKTOP_USER = "pgadmin4@pgadmin.org"


class Stack:
    def __init__(self, cluster: Cluster, pgadmin: PgAdmin) -> None:
        self.cluster = cluster
        self.pgadmin = pgadmin
        self.passfile = pgadmin.data / "pgpass"

    def tree(self, browser: Browser) -> tuple[str, str]:
        """The group and server ids of the itemsapi server."""
        gid = browser.nodes("server_group/nodes/")["itemsapi"]["_id"]
        return gid, browser.nodes(f"server_group/children/{gid}")["itemsapi"]["_id"]


@pytest.fixture(scope="module")
def stack(compose, tmp_path_factory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("pgadmin-e2e")
    cluster = Cluster(root / "pg", free_port()).init(host_auth="scram-sha-256")
    cluster.start()
    pgadmin = PgAdmin(root / "pgadmin", free_port(), compose)
    try:
        with psycopg.connect(cluster.socket_url, autocommit=True) as conn:
            conn.execute(create_role("itemsapi", PASSWORD))
            conn.execute("CREATE DATABASE itemsapi OWNER itemsapi")
        # As compose's db service does: sql/init.sql run by the owner, in its database.
        url = f"postgresql://itemsapi:{quote(PASSWORD, safe='')}@127.0.0.1:{cluster.port}/itemsapi"
        apply_baseline(url)
        with psycopg.connect(url, autocommit=True) as conn:
            for name in ITEMS:
                conn.execute("INSERT INTO items (name, price) VALUES (%s, 9.99)", (name,))
        write_passfile(compose, pgadmin.data, PASSWORD, cluster.port)
        pgadmin.load_servers(servers_json(cluster.port, pgadmin.data))
        pgadmin.start()
        yield Stack(cluster, pgadmin)
    finally:
        pgadmin.stop()
        cluster.stop()


def create_role(name: str, password: str) -> pgsql.Composed:
    return pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
        pgsql.Identifier(name), pgsql.Literal(password)
    )


def registered_servers(data: Path) -> list[tuple]:
    with sqlite3.connect(data / "pgadmin4.db") as conn:
        return conn.execute(
            "SELECT s.name, g.name, u.email, s.host, s.maintenance_db, s.username,"
            " s.connection_params, s.comment FROM server s JOIN user u ON u.id = s.user_id"
            " JOIN servergroup g ON g.id = s.servergroup_id"
        ).fetchall()


def test_servers_json_registers_one_server_for_the_desktop_user(stack):
    [(name, group, owner, host, database, user, params, _)] = registered_servers(stack.pgadmin.data)
    assert (name, group, owner) == ("itemsapi", "itemsapi", DESKTOP_USER)
    assert (host, database, user) == ("db", "itemsapi", "itemsapi")
    assert json.loads(params)["passfile"] == str(stack.passfile)


def test_the_tree_shows_the_itemsapi_group_beside_the_empty_default_one(stack):
    browser = Browser(stack.pgadmin.url)
    groups = browser.nodes("server_group/nodes/")
    assert set(groups) == {"Servers", "itemsapi"}
    assert browser.nodes(f"server_group/children/{groups['Servers']['_id']}") == {}
    servers = browser.nodes(f"server_group/children/{groups['itemsapi']['_id']}")
    assert list(servers) == ["itemsapi"]
    assert servers["itemsapi"]["connected"] is False  # until the developer opens it


def test_connecting_needs_no_password_and_reaches_the_items_rows(stack):
    browser = Browser(stack.pgadmin.url)
    gid, sid = stack.tree(browser)
    status, reply = browser.json("POST", f"/browser/server/connect/{gid}/{sid}")
    assert status == 200, reply
    assert reply["data"]["connected"] is True

    did = browser.nodes(f"database/nodes/{gid}/{sid}/")["itemsapi"]["_id"]
    scid = browser.nodes(f"schema/nodes/{gid}/{sid}/{did}/")["public"]["_id"]
    assert "items" in browser.nodes(f"table/nodes/{gid}/{sid}/{did}/{scid}/")

    assert browser.query(1, gid, sid, did, "SELECT count(*) FROM items") == [[str(len(ITEMS))]]
    # docs/pgadmin.md's query: the most recently changed items first.
    rows = browser.query(2, gid, sid, did, "SELECT * FROM items ORDER BY updated_at DESC LIMIT 50")
    assert sorted(row[1] for row in rows) == sorted(ITEMS)


def test_without_the_passfile_pgadmin_prompts_for_the_password(stack):
    hidden = stack.passfile.with_name("pgpass.hidden")
    stack.passfile.rename(hidden)
    try:
        browser = Browser(stack.pgadmin.url)  # a new session: nothing connected yet
        gid, sid = stack.tree(browser)
        status, reply = browser.json("POST", f"/browser/server/connect/{gid}/{sid}")
    finally:
        hidden.rename(stack.passfile)
    assert status == 401, reply
    assert reply["result"]["prompt_password"] is True


@pytest.mark.parametrize("password", ["plain", "a:b", "back\\slash", "\\:", "::\\\\"])
def test_the_passfile_line_is_read_back_by_libpq(stack, compose, tmp_path, password):
    role = "pgpass_case"
    with psycopg.connect(stack.cluster.socket_url, autocommit=True) as conn:
        conn.execute(create_role(role, password))
    try:
        passfile = write_passfile(compose, tmp_path, password, stack.cluster.port)
        # The line names the user itemsapi: only the password differs per case here.
        passfile.write_text(passfile.read_text().replace(":itemsapi:", f":{role}:", 1))
        with psycopg.connect(
            host="db", hostaddr="127.0.0.1", port=stack.cluster.port, user=role,
            dbname="itemsapi", passfile=str(passfile), connect_timeout=10,
        ) as conn:  # fmt: skip
            assert conn.execute("SELECT current_user").fetchone() == (role,)
    finally:
        with psycopg.connect(stack.cluster.socket_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_a_later_start_replaces_the_servers_with_servers_json(stack, compose, tmp_path):
    # A second start on the same configuration database, after servers.json changed.
    later = PgAdmin(tmp_path, free_port(), compose)
    shutil.copy(stack.pgadmin.data / "pgadmin4.db", later.data / "pgadmin4.db")
    changed = servers_json(stack.cluster.port, later.data)
    changed["Servers"]["1"]["Comment"] = "changed"
    later.load_servers(changed)
    [server] = registered_servers(later.data)
    assert server[-1] == "changed"


class PasswordFields(HTMLParser):
    """Password inputs in a page, except those of the workspaces pgAdmin keeps hidden (the Query
    Tool and PSQL workspaces' forms for an ad hoc connection)."""

    VOID: ClassVar = {
        "input",
        "img",
        "br",
        "meta",
        "link",
        "hr",
        "area",
        "base",
        "col",
        "source",
        "wbr",
    }

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.found: list[dict] = []
        self.dialogs = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.dialogs += attributes.get("role") == "dialog"
        inside = bool(self.stack and self.stack[-1])
        if tag == "input" and attributes.get("type") == "password" and not inside:
            self.found.append(attributes)
        if tag not in self.VOID:
            self.stack.append(inside or "AdHocConnection" in (attributes.get("class") or ""))

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()


def test_chromium_opens_pgadmin_with_no_login_and_no_password_prompt(stack, tmp_path):
    screenshot = tmp_path / "pgadmin.png"
    result = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1280,800", "--virtual-time-budget=20000", f"--screenshot={screenshot}",
         "--dump-dom", f"{stack.pgadmin.url}/browser/"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert ">itemsapi<" in dom  # the page rendered, with its tree
    fields = PasswordFields()
    fields.feed(dom)
    assert fields.found == []  # no login form, no master password, no server password
    assert fields.dialogs == 0
    assert screenshot.stat().st_size > 10_000
