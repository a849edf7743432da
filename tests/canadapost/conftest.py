from __future__ import annotations

import pytest
from lxml import etree

from tests.shared_reference import xsd_dir


@pytest.fixture(scope="session")
def shipment_schema() -> etree.XMLSchema:
    # By file path: shipment.xsd pulls in common.xsd (xsd:redefine) relative to its own location.
    return etree.XMLSchema(etree.parse(str(xsd_dir() / "shipment.xsd")))


@pytest.fixture(scope="session")
def ncshipment_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(xsd_dir() / "ncshipment.xsd")))
