"""The settings the app reads: the Procfile's $PORT binding and the fields the app added."""

from __future__ import annotations

import pytest

from app.settings import load_settings


def test_port_from_paas_binds_all_interfaces():
    s = load_settings({"PORT": "5001"})
    assert (s.host, s.port) == ("0.0.0.0", 5001)
    s = load_settings({"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": "7999"})
    assert (s.host, s.port) == ("127.0.0.1", 7999)
    assert load_settings({}).port == 7860 and load_settings({}).host == "127.0.0.1"


def test_app_fields():
    s = load_settings({})
    assert s.extra_models == ("ease", "pop") and s.generation_concurrency == 1 and s.oauth_enabled is False
    s = load_settings({"VITRINE_EXTRA_MODELS": "pop, itemknn,pop", "VITRINE_GENERATION_CONCURRENCY": "2",
                       "OAUTH_CLIENT_ID": "abc"})
    assert s.extra_models == ("pop", "itemknn") and s.generation_concurrency == 2 and s.oauth_enabled is True
    assert load_settings({"VITRINE_EXTRA_MODELS": ""}).extra_models == ()
    with pytest.raises(ValueError, match="VITRINE_GENERATION_CONCURRENCY must be between 1 and 16"):
        load_settings({"VITRINE_GENERATION_CONCURRENCY": "0"})
