"""Fixtures of the protocol tests: the embedded model and the toy landmark detector, loaded once per module."""

import pytest

from draggan.apps.toyfaces.detector import load_detector
from draggan.loading import load_generator


@pytest.fixture(scope="module")
def toy():
    return load_generator("toy-faces-64", device="cpu")


@pytest.fixture(scope="module")
def detector():
    return load_detector()
