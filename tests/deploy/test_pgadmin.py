"""The pgAdmin the tests run is the pgAdmin the stack runs (test_pgadmin_e2e.py runs it)."""

from __future__ import annotations

import re

from tests.deploy.conftest import ROOT


def test_the_image_tag_and_the_locked_pgadmin_are_one_release(compose):
    image = compose["services"]["pgadmin"]["image"]
    tag = image.removeprefix("dpage/pgadmin4:")
    assert re.fullmatch(r"\d+\.\d+", tag), f"pin the image to a release: {image}"
    for lock in ("tools/requirements-pgadmin.in", "tools/requirements-pgadmin.txt"):
        pins = re.findall(r"^pgadmin4==(\S+)", (ROOT / lock).read_text(), re.MULTILINE)
        assert pins == [tag], f"{lock} pins pgadmin4 {pins}, the image is {tag}"
