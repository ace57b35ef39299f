"""Checks of the installed wheel, run by ``.ci/run`` in a clean virtual environment outside the source tree.

Not collected by the README's test command (the name does not match ``test_*.py``): it needs the
built wheel (``SMART_RETRIEVERS_WHEEL``) and the source tree it was built from
(``SMART_RETRIEVERS_SOURCE``), and it checks that ``smart_retrievers`` is the installed copy.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import smart_retrievers

PACKAGE = Path(smart_retrievers.__file__).resolve().parent


@pytest.fixture
def source() -> Path:
    """The source tree the wheel was built from."""
    return Path(os.environ["SMART_RETRIEVERS_SOURCE"]).resolve()


@pytest.fixture
def wheel() -> Path:
    """The built wheel."""
    return Path(os.environ["SMART_RETRIEVERS_WHEEL"]).resolve()


def test_the_package_is_the_installed_wheel(source: Path) -> None:
    assert PACKAGE.parent == Path(sysconfig.get_paths()["purelib"]).resolve()
    assert not PACKAGE.is_relative_to(source)
    assert importlib.metadata.distribution("smart-retrievers").read_text("direct_url.json") is not None
    assert "editable" not in importlib.metadata.distribution("smart-retrievers").read_text("direct_url.json")


def test_package_data_is_in_the_wheel_and_installed(source: Path, wheel: Path) -> None:
    shipped = sorted(p.relative_to(source).as_posix() for p in (source / "smart_retrievers" / "data").iterdir())
    assert "smart_retrievers/data/generic_sample.txt" in shipped
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for path in [*shipped, "smart_retrievers/py.typed"]:
        assert path in names, f"{path} is missing from {wheel.name}"
        assert (PACKAGE.parent / path).read_bytes() == (source / path).read_bytes()


def test_one_version_everywhere(wheel: Path) -> None:
    assert importlib.metadata.version("smart-retrievers") == smart_retrievers.__version__
    assert wheel.name.startswith(f"smart_retrievers-{smart_retrievers.__version__}-")
    cli = subprocess.run(
        [Path(sys.executable).with_name("smart-retrievers"), "--version"], capture_output=True, text=True, check=True
    )
    assert cli.stdout.strip() == f"smart-retrievers {smart_retrievers.__version__}"


def test_the_generic_codec_sample_loads_from_the_installed_package() -> None:
    from smart_retrievers.codec import generic_sample

    texts = generic_sample()
    assert len(texts) > 100 and all(isinstance(t, str) and t for t in texts)
