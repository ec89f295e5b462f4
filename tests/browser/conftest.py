"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

Playwright never downloads a browser here; without /usr/bin/chromium these tests skip locally and
fail under CI=true."""
import os

import cv2
import numpy as np
import pytest

from labeling import storage
from labeling.models import Keyframe
from labeling.roles import Role
from labeling.services.people import role_grant
from tests.conftest import require

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "pw-browser-123"


@pytest.fixture(scope="package")
def browser():
    require(os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, which makes Django refuse ORM
    # calls from the test body (SynchronousOnlyOperation): Django's documented switch, only while
    # these tests run (package scope), so no other test or subprocess inherits it.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            yield chromium
            chromium.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context; JavaScript dialogs are recorded (and dismissed) in `page.dialogs`."""
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


@pytest.fixture
def sign_in(page, live_server, django_user_model):
    """Create a user with `role` and log in through the login form."""

    def sign_in(username: str, role: Role):
        person = django_user_model.objects.create_user(username, password=PASSWORD)
        role_grant(user=person, role=role)
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")
        return person

    return sign_in


def with_cover(video, shade: int):
    """A cover keyframe with a small real JPEG, so thumbnails show."""
    relative = storage.keyframe_relpath(video.pk, 0)
    ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), shade % 256, dtype=np.uint8))
    assert ok
    storage.write_atomic(storage.media_path(relative), jpeg.tobytes())
    Keyframe.objects.create(video=video, position=0, timestamp_s=0.0, image=relative, is_cover=True)
    return video
