"""server.settings: defaults and TABGPT_RELAY_* overrides."""

from __future__ import annotations

import pytest

from server.settings import RelaySettings, SettingsError


def test_environment_overrides_each_type():
    env = {"TABGPT_RELAY_MAX_SESSIONS": "3", "TABGPT_RELAY_AUTH_TIMEOUT_S": "0.5",
           "TABGPT_RELAY_ALLOW_LOCALHOST_ORIGINS": "false",
           "TABGPT_RELAY_ALLOWED_ORIGINS": "https://a.example, https://b.example",
           "TABGPT_RELAY_STATE_DIR": "/tmp/x", "UNRELATED": "1"}
    s = RelaySettings.from_env(env)
    assert (s.max_sessions, s.auth_timeout_s, s.allow_localhost_origins) == (3, 0.5, False)
    assert s.allowed_origins == ("https://a.example", "https://b.example") and s.state_dir == "/tmp/x"
    s = RelaySettings.from_env({"TABGPT_RELAY_TRUSTED_PROXY_HEADER": "X-Forwarded-For", "TABGPT_RELAY_IDLE_EXPIRY_S": "60",
                                "TABGPT_RELAY_REDIS_URL": "redis://h:6379/1", "TABGPT_RELAY_CREATES_PER_MINUTE": "3"})
    assert (s.trusted_proxy_header, s.idle_expiry_s, s.redis_url, s.creates_per_minute) == (
        "X-Forwarded-For", 60.0, "redis://h:6379/1", 3)
    assert RelaySettings().trusted_proxy_header is None and RelaySettings().redis_url is None  # off by default
    assert RelaySettings.from_env({}) == RelaySettings()


def test_keyword_overrides_win_over_the_environment():
    s = RelaySettings.from_env({"TABGPT_RELAY_MAX_SESSIONS": "3"}, max_sessions=5)
    assert s.max_sessions == 5


@pytest.mark.parametrize("var, raw", [("MAX_SESSIONS", "many"), ("RATE_PER_S", "fast"), ("ALLOW_LOCALHOST_ORIGINS", "maybe")])
def test_bad_values_name_the_variable(var, raw):
    with pytest.raises(SettingsError, match=f"TABGPT_RELAY_{var}"):
        RelaySettings.from_env({f"TABGPT_RELAY_{var}": raw})
