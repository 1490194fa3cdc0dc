"""Models on the Hugging Face Hub: a repo id where a model folder is expected.

An exported model folder (``umbenet export``) published with ``hf upload`` is used by its repo id,
``owner/name`` (optionally ``owner/name@revision``): ``UMBEnet.load("owner/name")``, ``umbenet
predict --run owner/name``. The repo is fetched with ``huggingface_hub.snapshot_download`` into
the usual Hub cache (``HF_HOME``); ``HF_HUB_OFFLINE=1`` uses only what that cache holds. Nothing
fetched is unpickled: the weights are safetensors, the rest JSON and Markdown.
"""
from __future__ import annotations

import re
from pathlib import Path

from umbenet_cli.errors import UserError

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*(@[A-Za-z0-9_./-]+)?$")
# Only the files a model folder holds: a repo's other files (large extras) are not fetched.
MODEL_FILES = ("*.json", "*.safetensors", "*.md", "COMPLETE")


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


def snapshot(ref: str) -> Path:
    """Fetch (or find in the cache, offline) the Hub repo ``owner/name[@revision]``."""
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    repo_id, _, revision = ref.partition("@")
    fix_local = (f"or download it where there is a connection (`hf download {repo_id} --local-dir DIR`) "
                 f"and pass the folder DIR")
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, revision=revision or None,
                                                      allow_patterns=list(MODEL_FILES)))
    except hub_errors.LocalEntryNotFoundError:  # offline (HF_HUB_OFFLINE=1 or no network), not cached
        raise HubError(f"{ref!r} is no folder here, and the Hugging Face Hub repo {repo_id!r} is not in the "
                       f"local Hub cache while the Hub cannot be reached (offline"
                       f"{': HF_HUB_OFFLINE=1 is set' if huggingface_hub.constants.HF_HUB_OFFLINE else ''}). "
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
