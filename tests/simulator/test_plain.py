"""EDIMAX and generic cameras: one JPEG at one path, everything else 404."""

from __future__ import annotations

import httpx

from tests.simulator.helpers import PASSWORD, camera, comment_of, decoded


def test_edimax_serves_snapshot_jpg_with_basic_auth(start_simulator):
    sim = start_simulator(camera("ed", "edimax", width=320, height=240))
    response = httpx.get(sim.url_of("ed") + "/snapshot.jpg", auth=("admin", PASSWORD))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert decoded(response.content).size == (320, 240)
    assert httpx.get(sim.url_of("ed") + "/other.jpg", auth=("admin", PASSWORD)).status_code == 404


def test_generic_serves_its_configured_path(start_simulator):
    sim = start_simulator(camera("axis", "generic", path="/axis-cgi/jpg/image.cgi"))
    response = httpx.get(sim.url_of("axis") + "/axis-cgi/jpg/image.cgi?resolution=640x480")
    decoded(response.content)
    assert httpx.get(sim.url_of("axis") + "/snap.jpg").status_code == 404


def test_generic_defaults_to_snap_jpg_and_every_answer_differs(start_simulator):
    sim = start_simulator(camera("g", "generic"))
    with httpx.Client(base_url=sim.url_of("g")) as client:
        bodies = [client.get("/snap.jpg").content for _ in range(5)]
    assert len(set(bodies)) == 5
    assert len({comment_of(body) for body in bodies}) == 5
    assert all(20_000 < len(body) < 100_000 for body in bodies)
