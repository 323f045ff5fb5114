""" "Check now" cannot flood the queues, and a slow target cannot hold up click counting.

The first tests press the button through the dashboard against the real
Redis and broker (no worker: the queued tasks are counted where they wait).
The last one runs the ``make run`` layout for real: a drain worker, a worker
for everything else, beat and gunicorn, with a target that drips its answer.
"""

import pytest
import requests
from sqlalchemy import select

from tests.broker import queued_tasks
from tests.dashboard_helpers import csrf_token, logged_in
from tests.local_site import Drip, LocalSite
from tests.processes import wait_for
from tests.test_click_pipeline import counter_of
from webapp.extensions import db
from webapp.links import service
from webapp.links.check_requests import PER_USER_PER_MINUTE
from webapp.models import Link

CHECK = "tasks.links.check_link_target"


@pytest.fixture
def owner(app, user):
    return logged_in(app)


def press(client, slug, times):
    """Press "Check now" ``times`` times; return the flash messages seen after each press."""
    token = csrf_token(client, f"/links/{slug}")
    messages = []
    for _ in range(times):
        response = client.post(f"/links/{slug}/check", data={"csrf_token": token}, follow_redirects=True)
        assert response.status_code == 200
        messages.append(response.text)
    return messages


def test_thirty_presses_queue_one_check_and_say_so(owner, user):
    service.create_link("https://example.com/a", user, slug="pressed")

    pages = press(owner, "pressed", 30)

    assert [task.task for task in queued_tasks("default")] == [CHECK]
    assert "Checking the target" in pages[0]
    assert all("already under way" in page for page in pages[1:PER_USER_PER_MINUTE])
    assert all("Too many checks" in page for page in pages[PER_USER_PER_MINUTE:])


def test_each_link_gets_its_own_check_and_the_user_limit_spans_links(owner, user):
    for n in range(PER_USER_PER_MINUTE + 2):
        service.create_link(f"https://example.com/{n}", user, slug=f"link-{n}")

    pages = [press(owner, f"link-{n}", 1)[0] for n in range(PER_USER_PER_MINUTE + 2)]

    assert len(queued_tasks("default")) == PER_USER_PER_MINUTE
    assert "Too many checks" in pages[-1]


@pytest.mark.integration
def test_a_check_flood_on_a_dripping_target_neither_delays_counting_nor_outlives_its_deadline(
    app, user, processes, redis_server
):
    with LocalSite() as target:
        drip = Drip(b"<title>" + b"x" * 500, interval=1.0)  # 500 s if nothing stopped it
        target.routes["/drip"] = (200, {"Content-Type": "text/html"}, drip)
        link, _ = service.create_link(target.base + "/drip", user, slug="drip")
        env = {"LINK_CHECK_ALLOWED_HOSTS": "127.0.0.1", "LINK_CHECK_TIMEOUT": "3"}
        web = processes.web(**env)
        processes.worker(name="drain", queues="clicks", **env)  # the make run layout
        processes.worker(name="worker", queues="reports,default", **env)
        processes.beat(**env)
        owner = logged_in(app)
        press(owner, "drip", 30)

        with requests.Session() as session:
            statuses = [
                session.get(f"{web.url}/r/drip", allow_redirects=False).status_code for _ in range(50)
            ]
        assert statuses == [302] * 50
        wait_for(lambda: counter_of(link.id) == 50, 20, 0.1, "50 clicks counted while the check hangs")

        def checked():
            db.session.rollback()
            return db.session.scalar(select(Link.target_error).where(Link.id == link.id))

        error = wait_for(checked, 60, 0.2, "the check's result")
        assert "deadline" in error, error
        assert drip.hung_up.wait(10) and drip.sent < len(drip.body)
