"""A user's time zone: taken from the browser at the first login, changed in Settings."""

import pytest

from tests.dashboard_helpers import OWNER_EMAIL, OWNER_PASSWORD, csrf_token, logged_in, visitor
from webapp.extensions import db


def log_in_with_zone(app, zone):
    client = visitor(app)
    data = {"email": OWNER_EMAIL, "password": OWNER_PASSWORD, "tz": zone, "csrf_token": csrf_token(client)}
    assert client.post("/login", data=data).status_code == 302
    return client


def test_the_first_login_takes_the_browsers_zone(app, user):
    log_in_with_zone(app, "Europe/Paris")
    db.session.refresh(user)
    assert user.time_zone == "Europe/Paris"


@pytest.mark.parametrize("zone", ["", "Mars/Olympus", "../../etc/passwd", "Europe/Paris\x00"])
def test_a_missing_or_unknown_browser_zone_is_ignored(app, user, zone):
    log_in_with_zone(app, zone)
    db.session.refresh(user)
    assert user.time_zone is None


def test_a_later_login_does_not_change_a_chosen_zone(app, user):
    user.time_zone = "Asia/Tokyo"
    db.session.commit()
    log_in_with_zone(app, "Europe/Paris")
    db.session.refresh(user)
    assert user.time_zone == "Asia/Tokyo"


def test_settings_change_the_zone_and_the_charts_follow(app, user):
    owner = logged_in(app)
    response = owner.post(
        "/settings", data={"time_zone": "Asia/Kolkata", "csrf_token": csrf_token(owner, "/settings")}
    )
    assert response.status_code == 303
    db.session.refresh(user)
    assert user.time_zone == "Asia/Kolkata"
    assert "Asia/Kolkata" in owner.get("/fragments/clicks-chart").text


def test_settings_refuse_an_unknown_zone_beside_the_field(app, user):
    owner = logged_in(app)
    response = owner.post(
        "/settings", data={"time_zone": "Nowhere/Land", "csrf_token": csrf_token(owner, "/settings")}
    )
    assert response.status_code == 400
    assert 'id="time-zone-error"' in response.text and "unknown time zone" in response.text
    db.session.refresh(user)
    assert user.time_zone is None


def test_settings_without_a_choice_take_the_browsers_zone(app, user):
    owner = logged_in(app)
    data = {
        "time_zone": "",
        "browser_time_zone": "America/Sao_Paulo",
        "csrf_token": csrf_token(owner, "/settings"),
    }
    assert owner.post("/settings", data=data).status_code == 303
    db.session.refresh(user)
    assert user.time_zone == "America/Sao_Paulo"
