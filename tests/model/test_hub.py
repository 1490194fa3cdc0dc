"""Hub lookups on a machine without network: they fail within OFFLINE_TIMEOUT_S, DNS included."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from umbenet_cli.model import hub
from umbenet_cli.model.hub import HubError, hub_unreachable, resolve_model_folder


@pytest.fixture
def online_mode(monkeypatch, tmp_path):
    """Not in offline mode, no proxy, an empty Hub cache, a Hub endpoint by host name."""
    import huggingface_hub
    from huggingface_hub import constants

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "0")
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub, "is_offline_mode", lambda: False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.example.invalid")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


@pytest.fixture
def dns_hangs(monkeypatch):
    """socket.getaddrinfo blocks (a resolver that never answers) until the test ends."""
    release, calls = threading.Event(), []

    def hanging(host, *args, **kwargs):
        calls.append(host)
        release.wait(60)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    yield calls
    release.set()


def test_probe_returns_within_the_limit_when_dns_hangs(online_mode, dns_hangs, monkeypatch):
    monkeypatch.setattr(hub, "OFFLINE_TIMEOUT_S", 0.5)
    t0 = time.monotonic()
    why = hub_unreachable()
    took = time.monotonic() - t0
    assert dns_hangs == ["hub.example.invalid"]
    assert 0.5 <= took < 1.0, took
    assert "hub.example.invalid cannot be reached" in why and "DNS lookup" in why and "0.5 s" in why


def test_hub_lookup_raises_within_the_limit_when_dns_hangs(online_mode, dns_hangs, monkeypatch):
    """The whole lookup (``predict --run owner/name``), at the real limit: a HubError naming the
    repo, the DNS timeout and the fix, after OFFLINE_TIMEOUT_S rather than the resolver's retries."""
    import huggingface_hub

    real = huggingface_hub.snapshot_download

    def network_download(*args, local_files_only=False, **kwargs):
        assert local_files_only, "the Hub was unreachable: only the local cache may be asked"
        return real(*args, local_files_only=True, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", network_download)
    t0 = time.monotonic()
    with pytest.raises(HubError) as err:
        resolve_model_folder("someone/umbenet-mafw")
    took = time.monotonic() - t0
    assert took < hub.OFFLINE_TIMEOUT_S + 1.0, took
    msg = str(err.value)
    assert "'someone/umbenet-mafw'" in msg and "DNS lookup of hub.example.invalid" in msg
    assert "hf download someone/umbenet-mafw" in msg


def test_probe_names_a_refused_connection(online_mode, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # a closed local port
    why = hub_unreachable()
    assert why.startswith("127.0.0.1 cannot be reached from here (ConnectionRefusedError")


def test_probe_in_offline_mode_makes_no_lookup(monkeypatch, dns_hangs):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE" in hub_unreachable() and dns_hangs == []
