import pytest

from tests.security.access_policy import build_world


@pytest.fixture
def world(django_user_model) -> dict:
    return build_world(django_user_model)
