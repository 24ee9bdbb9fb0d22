"""Fixtures shared by the format adapter tests."""
from __future__ import annotations

import pytest

from engine.data.images import ImagePolicy

from format_fixtures import make_image_root


@pytest.fixture
def image_root(tmp_path):
    return make_image_root(tmp_path)


@pytest.fixture
def policy(image_root):
    return ImagePolicy(roots=(str(image_root),))
