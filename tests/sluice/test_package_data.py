"""The package ships what ``sluice demo`` reads, so that ``pip install .`` and then ``sluice demo``
work from any directory: package data declared in pyproject.toml that exists, and read through
importlib.resources rather than from a path in a checkout."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

import sluice
from sluice.client import load_spec_file
from sluice.demo import DEMO_SPEC

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(sluice.__file__).parent


def declared_package_data() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(pyproject["tool"]["setuptools"]["package-data"]["sluice"])


def test_declared_package_data_exists_and_holds_the_demo_spec() -> None:
    patterns = declared_package_data()
    shipped = {path for pattern in patterns for path in PACKAGE.glob(pattern) if path.is_file()}
    for pattern in patterns:
        assert any(path.match(pattern) for path in shipped), f"sluice/{pattern} matches no file"
    assert Path(str(DEMO_SPEC)) in shipped


def test_the_demo_reads_its_spec_as_a_package_resource() -> None:
    assert DEMO_SPEC.is_file()
    assert Path(str(DEMO_SPEC)).is_relative_to(PACKAGE)  # not ../examples beside the package
    data, spec = load_spec_file(DEMO_SPEC)
    assert spec.workflow_id == "rollout-default-reviews"
    assert data["router"]["kind"] == "envoy"


def test_the_packaged_demo_spec_is_the_example() -> None:
    packaged = yaml.safe_load(DEMO_SPEC.read_text())
    assert packaged == yaml.safe_load((ROOT / "examples" / "reviews-local.yaml").read_text())
