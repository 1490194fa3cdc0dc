"""prep's allocator setting: applied on glibc, skipped quietly elsewhere or when set by the user."""
from __future__ import annotations

import ctypes
import platform
import sys

import pytest

from pipelines import prep


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc only")
def test_applied_on_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert prep.limit_heap_growth() is True


def test_user_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert prep.limit_heap_growth() is False


def test_other_libc_is_left_alone(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)

    def no_glibc(name, *a, **k):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_glibc)
    assert prep.limit_heap_growth() is False
