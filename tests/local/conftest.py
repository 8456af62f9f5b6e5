"""The local shape composed in-process: `build_platform` on a temporary data dir, seeded
from the repository's `samples/`, served by a TestClient inside the app's lifespan (so the
engine consumer and the signal evaluator threads run). One platform per module: seeding
loads 47k bars and hashes a password and a passphrase on purpose slowly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from local_helpers import LOCAL_CLIENT, SAMPLES

from algotrendy.config import Settings
from algotrendy.local import LocalPlatform, build_platform, local_settings


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> LocalPlatform:
    data_dir = tmp_path_factory.mktemp("local")
    settings = local_settings(data_dir, Settings(admin_username=None, admin_password=None))
    return build_platform(settings, samples_dir=SAMPLES)


@pytest.fixture(scope="module")
def client(platform: LocalPlatform) -> Iterator[TestClient]:
    with TestClient(platform.app, client=LOCAL_CLIENT) as c:
        yield c


@pytest.fixture(scope="module")
def auth(platform: LocalPlatform, client: TestClient) -> dict[str, str]:
    assert platform.seeded is not None
    demo = platform.seeded.secrets
    reply = client.post(
        "/auth/login", json={"username": demo.admin_username, "password": demo.admin_password}
    )
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}
