from __future__ import annotations

from pathlib import Path

import pytest
import pytest_django.fixtures as _pdf

_databases_for_setup = _pdf._get_databases_for_setup


def _databases_for_setup_with_live(items):
    """Live tests use the test database from a subprocess, outside any test transaction, so
    they carry no ``django_db`` mark; pytest-django must still create the test database."""
    aliases, serialized = _databases_for_setup(items)
    if any(item.get_closest_marker("live") for item in items):
        aliases = {*aliases, "default"}
    return aliases, serialized


_pdf._get_databases_for_setup = _databases_for_setup_with_live


@pytest.hookimpl(trylast=True)  # after pytest-django's TestCase-first ordering
def pytest_collection_modifyitems(config, items):
    """Live modules run last.

    The ``live`` world is committed to the test database and stays there until the session
    ends, so every in-process test must have run before it is built. Under pytest-xdist
    (``--dist loadscope``: whole modules, handed out in collection order) that holds on every
    worker only if live tests sit in modules of their own, after all the others.
    """
    kind: dict[str, bool] = {}
    for item in items:
        is_live = item.get_closest_marker("live") is not None
        if "live" in item.fixturenames and not is_live:
            raise pytest.UsageError(f"{item.nodeid} uses the live world: mark it live")
        module = item.nodeid.split("::", 1)[0]
        if kind.setdefault(module, is_live) != is_live:
            raise pytest.UsageError(
                f"{module} mixes live and in-process tests: move the live ones to a module of "
                "their own (pytestmark = pytest.mark.live)"
            )

    def order(item):
        module = item.nodeid.split("::", 1)[0]
        return kind[module], -HEAVY_MODULES.get(module, 0)

    items.sort(key=order)


# Seconds per module as measured (``--durations=0``, summed), heaviest first within each group:
# loadscope hands modules out in this order, so the long ones start early and the short ones
# fill the gaps at the end instead of one worker finishing a long module alone. Rough figures
# are enough; a module not listed counts 0.
HEAVY_MODULES = {
    "tests/gateway/test_routing_live.py": 37,
    "tests/provisioning/test_run_embedded.py": 28,
    "tests/evaluation/test_shadow_live.py": 16,
    "tests/fuzz/test_api_schemathesis.py": 13,
    "tests/reports/test_alerts_live.py": 13,
    "tests/test_serve_live.py": 12,
    "tests/browser/test_dashboards_browser.py": 11,
    "tests/gateway/test_admission_live.py": 9,
    "tests/simulator/test_simulator.py": 9,
    "tests/gateway/test_gateway_live.py": 9,
    "tests/gateway/test_durability.py": 8,
    "tests/test_serve.py": 6,
    "tests/fuzz/test_config_fuzz.py": 6,
    "tests/gateway/test_budget_bound_live.py": 6,
    "tests/teams/test_admin.py": 6,
    "tests/faults/test_upstream_faults_under_load.py": 6,
    "tests/gateway/test_tokens_offline.py": 6,
    "tests/faults/test_soak_short.py": 40,
    "tests/faults/test_redis_outage.py": 8,
    "tests/gateway/test_lost_calls_live.py": 11,
    "tests/browser/test_every_page_browser.py": 11,
    "tests/simulator/test_admin_reports.py": 8,
    "tests/gateway/test_batches_live.py": 7,
    "tests/browser/test_invoice_browser.py": 5,
    "tests/gateway/test_response_cache_live.py": 5,
    "tests/simulator/test_batches.py": 5,
    "tests/reports/test_savings.py": 5,
}


@pytest.fixture(scope="session")
def live_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("live")


@pytest.fixture(scope="session")
def simulator(live_tmp):
    from tests.live import start_simulator

    server = start_simulator(live_tmp)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sim_farm(live_tmp):
    """Extra simulators with fixed behaviour: slow (timeouts), failing (503), drip (slow stream)."""
    from tests.live import start_simulator

    farm = {
        "slow": start_simulator(live_tmp, "--latency-ms", "3000"),
        "failing": start_simulator(live_tmp, "--status", "503"),
        "drip": start_simulator(live_tmp, "--chunk-delay-ms", "100", "--chunks", "40"),
    }
    yield farm
    for server in farm.values():
        server.stop()


@pytest.fixture(scope="session")
def live(django_db_setup, django_db_blocker, simulator, sim_farm, live_tmp):
    """The app under uvicorn against the test database, with a committed org ``live`` whose
    provider points at the simulator, and a key for it. Removed again at session end."""
    from django.db import connection

    from tests.live import live_database_url, start_app
    from tests.live_world import LiveWorld

    with django_db_blocker.unblock():
        name = str(connection.settings_dict["NAME"])
        assert "test" in name.rsplit("/", 1)[-1], f"refusing to run live tests on {name}"
        world = LiveWorld.build(
            sim_url=simulator.url, farm={name: s.url for name, s in sim_farm.items()}
        )
        database_url = live_database_url()
    app = start_app(
        live_tmp,
        database_url=database_url,
        FINOPS_UPSTREAM_TIMEOUT="1.0",  # the farm's slow simulator answers after 3 s
        FINOPS_MAX_REQUEST_BYTES=str(256 * 1024),
        FINOPS_BODY_READ_SECONDS="2",
    )
    world.app = app
    world.simulator = simulator
    world.blocker = django_db_blocker
    yield world
    app.stop()
    with django_db_blocker.unblock():
        world.destroy()
