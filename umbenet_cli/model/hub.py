"""Models on the Hugging Face Hub: a repo id where a model folder is expected.

An exported model folder (``umbenet export``) published with ``hf upload`` is used by its repo id,
``owner/name`` (optionally ``owner/name@revision``): ``UMBEnet.load("owner/name")``, ``umbenet
predict --run owner/name``. The repo is fetched with ``huggingface_hub.snapshot_download`` into
the usual Hub cache (``HF_HOME``); ``HF_HUB_OFFLINE=1`` uses only what that cache holds. Nothing
fetched is unpickled: the weights are safetensors, the rest JSON and Markdown.
"""
from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path

from umbenet_cli.errors import UserError

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*(@[A-Za-z0-9_./-]+)?$")
# Only the files a model folder holds: a repo's other files (large extras) are not fetched.
MODEL_FILES = ("*.json", "*.safetensors", "*.md", "COMPLETE")
# How long a machine without network waits before a Hub lookup gives up: the name lookup (DNS) and
# one connection attempt together, instead of huggingface_hub's retries (~40 s).
OFFLINE_TIMEOUT_S = 3.0


class HubError(UserError, RuntimeError):
    """A Hub repo id that could not be turned into a local model folder; names the repo and the fix."""


def looks_like_repo_id(text: str | Path) -> bool:
    """``owner/name`` or ``owner/name@revision`` (a path that does not exist here may still match)."""
    s = str(text)
    return bool(_REPO_ID.match(s)) and ".." not in s


def resolve_model_folder(ref: str | Path) -> Path:
    """A local folder for ``ref``: the folder itself when it exists, else the snapshot of the Hub
    repo ``ref`` names. HubError when ``ref`` is neither, or the repo cannot be fetched."""
    p = Path(ref).expanduser()
    if p.exists() or not looks_like_repo_id(ref):
        return p
    return snapshot(str(ref))


def _resolve(host: str, port: int, timeout: float) -> list[tuple]:
    """``socket.getaddrinfo(host, port)`` within ``timeout`` seconds; TimeoutError when it takes longer.

    getaddrinfo takes no timeout and the resolver's own (5 s per try, several tries and servers)
    applies: with an unreachable DNS server it hangs well beyond OFFLINE_TIMEOUT_S. So it runs in a
    daemon thread that is left behind when it overruns (it ends when the resolver gives up, and
    does not keep the process alive)."""
    result: dict = {}
    done = threading.Event()

    def lookup() -> None:
        try:
            result["addrs"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=lookup, name=f"dns {host}", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"the DNS lookup of {host} gave no answer within {timeout:g} s")
    if "error" in result:
        raise result["error"]
    return result["addrs"]


def hub_unreachable(timeout: float | None = None) -> str | None:
    """Why the Hub cannot be reached (offline mode, or no name lookup and connection within
    ``timeout``, default OFFLINE_TIMEOUT_S); None when it can. One DNS lookup and one connection
    attempt, both inside the limit, so that an offline machine fails at once instead of after
    huggingface_hub's retries."""
    from urllib.parse import urlparse

    from huggingface_hub import constants, is_offline_mode

    if is_offline_mode() or any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE")
                                for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return "HF_HUB_OFFLINE is set: offline mode"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # through a proxy: let huggingface_hub connect its own way
    timeout = OFFLINE_TIMEOUT_S if timeout is None else timeout
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    deadline = time.monotonic() + timeout
    try:
        addrs = _resolve(host, port, timeout)
        error: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _, address in addrs:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no connection within {timeout:g} s")
            try:
                with socket.socket(family, kind, proto) as sock:
                    sock.settimeout(left)
                    sock.connect(address)
                return None
            except OSError as exc:
                error = exc
        raise error
    except OSError as exc:  # TimeoutError included
        return f"{host} cannot be reached from here ({type(exc).__name__}: {exc})"


def snapshot(ref: str) -> Path:
    """Fetch (or find in the cache, offline) the Hub repo ``owner/name[@revision]``."""
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    repo_id, _, revision = ref.partition("@")
    fix_local = (f"or download it where there is a connection (`hf download {repo_id} --local-dir DIR`) "
                 f"and pass the folder DIR")
    # Unreachable (offline mode, no DNS answer, no connection): the local Hub cache alone, at once.
    why = hub_unreachable()
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, revision=revision or None,
                                                      allow_patterns=list(MODEL_FILES),
                                                      **({"local_files_only": True} if why else {})))
    except hub_errors.LocalEntryNotFoundError:  # offline (HF_HUB_OFFLINE=1 or no network), not cached
        raise HubError(f"{ref!r} is no folder here, and the Hugging Face Hub repo {repo_id!r} is not in the "
                       f"local Hub cache while the Hub cannot be reached ({why or 'offline'}). "
                       f"Fix: connect and retry (unset HF_HUB_OFFLINE), {fix_local}.") from None
    except (hub_errors.RepositoryNotFoundError, hub_errors.GatedRepoError) as exc:
        raise HubError(f"{ref!r} is no folder here, and the Hugging Face Hub has no repo {repo_id!r} this "
                       f"account may read ({type(exc).__name__}). Fix: check the path or the repo id; for a "
                       f"private or gated repo log in with `hf auth login`.") from None
    except hub_errors.RevisionNotFoundError:
        raise HubError(f"the Hugging Face Hub repo {repo_id!r} has no revision {revision!r}. Fix: give a "
                       f"branch, tag or commit of the repo after '@', or leave the revision out.") from None
    except (hub_errors.HfHubHTTPError, OSError) as exc:
        raise HubError(f"could not fetch the Hugging Face Hub repo {repo_id!r}: {exc}. Fix: retry, "
                       f"{fix_local}.") from None
