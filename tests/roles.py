"""Shared checks of who may do what in the browser: every role posts an htmx action and either gets
the fragment with the change made, or a 403 with nothing changed; anonymous posts go to the login
page and GETs are refused. An action is (path, form data, minimum role, check that it changed)."""
from collections.abc import Callable

from labeling.roles import Role

ROLES = [Role.NONE, Role.ANNOTATOR, Role.TAXONOMY_OWNER, Role.ADMIN]
HTMX = {"HTTP_HX_REQUEST": "true"}

Action = tuple[str, dict, Role, Callable[[], bool]]


def check_action_by_role(client, as_role, role: Role, action: Action) -> None:
    path, data, min_role, changed = action
    as_role(role)
    response = client.post(path, data, **HTMX)
    if role >= min_role:
        assert response.status_code == 200, response.content.decode()[:500]
        assert "<html" not in response.content.decode()
        assert changed()
    else:
        assert response.status_code == 403
        assert not changed()


def check_action_needs_signing_in_and_post(client, as_role, action: Action) -> None:
    path, data, _, changed = action
    response = client.post(path, data)
    assert response.status_code == 302 and "/login/" in response["Location"]
    as_role(Role.ADMIN)
    assert client.get(path).status_code == 405
    assert not changed()
