"""prep's memory setting: oneDNN's primitive cache capped unless the user chose a size."""
from __future__ import annotations

import os

import pytest

from pipelines import prep


def test_sets_the_cache_capacity(monkeypatch):
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    monkeypatch.delenv("DNNL_PRIMITIVE_CACHE_CAPACITY", raising=False)
    assert prep.limit_heap_growth() is True
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"


@pytest.mark.parametrize("name", ["ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY"])
def test_user_setting_wins(monkeypatch, name):
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    monkeypatch.delenv("DNNL_PRIMITIVE_CACHE_CAPACITY", raising=False)
    monkeypatch.setenv(name, "1024")
    assert prep.limit_heap_growth() is False
    assert os.environ[name] == "1024"
