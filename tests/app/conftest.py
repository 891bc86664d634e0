"""Fixtures of the app tests; the builders live in `vitrine_app_fixtures` (a unique module name, so that
test modules can import them without clashing with tests/conftest.py)."""

from __future__ import annotations

import pytest

from vitrine_app_fixtures import free_port, make_services  # noqa: F401 - re-exported for the fixtures


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    """Services over the tiny dataset, with ease + pop and the fallback generators (shared by a module)."""
    services = make_services(tmp_path_factory.mktemp("vitrine"))
    yield services
    services.close()


@pytest.fixture()
def fresh_svc(tmp_path):
    """Services with an empty DB of their own (for tests that count rows)."""
    services = make_services(tmp_path)
    yield services
    services.close()


@pytest.fixture()
def services_factory(tmp_path):
    """Build services with overridden settings: `services_factory(label_password="x")`."""
    made = []

    def factory(**overrides):
        services = make_services(tmp_path / f"s{len(made)}", **overrides)
        made.append(services)
        return services

    yield factory
    for services in made:
        services.close()


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    """The app served in-process on a free port: (url, services). Closed after the module."""
    from app.web.ui import build_demo
    from app.web.launch import enable_queue, launch_kwargs

    services = make_services(tmp_path_factory.mktemp("live"))
    demo = build_demo(services)
    enable_queue(demo, services.settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_kwargs(services))
    yield f"http://127.0.0.1:{port}/", services
    demo.close()
    services.close()
