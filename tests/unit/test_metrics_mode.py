"""A worker whose metrics would not reach the shared folder refuses to start instead of
serving scrapes without its counts: prometheus-client picks its mode when first imported."""

from __future__ import annotations

import os
import subprocess
import sys

IMPORT_THEN_NAME = (
    "import os, sys\n"
    "from itemsapi import metrics\n"  # imported before the folder is named
    "os.environ['PROMETHEUS_MULTIPROC_DIR'] = sys.argv[1]\n"
    "metrics.check_mode()\n"
)
NAME_THEN_IMPORT = (
    "import os, sys\n"
    "os.environ['PROMETHEUS_MULTIPROC_DIR'] = sys.argv[1]\n"
    "from itemsapi import metrics\n"
    "metrics.check_mode()\n"
    "print('checked')\n"
)


def run(code: str, folder: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return subprocess.run(
        [sys.executable, "-c", code, folder], capture_output=True, text=True, env=env, timeout=60
    )


def test_metrics_imported_before_the_folder_is_named_fail_loudly(tmp_path):
    result = run(IMPORT_THEN_NAME, str(tmp_path))
    assert result.returncode != 0
    assert "prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set" in (
        result.stderr
    )


def test_metrics_imported_after_the_folder_is_named_pass_the_check(tmp_path):
    result = run(NAME_THEN_IMPORT, str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "checked"


def test_the_itemsapi_command_imports_prometheus_client_only_once_serving(tmp_path):
    # `itemsapi serve` names the workers' folder after its module (and every command module it
    # registers, transfer_cli's included) was imported: none of them may bring it in first.
    code = "import sys\nimport itemsapi.cli\nprint('prometheus_client' in sys.modules)\n"
    assert run(code, str(tmp_path)).stdout == "False\n"
