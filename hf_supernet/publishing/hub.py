"""The Hub side of publishing: access checks with clear errors, and ``create_repo`` + ``upload_folder`` with retries.

Everything goes through ``huggingface_hub.HfApi``: the token comes from where huggingface_hub looks for it (the
``token`` argument, ``HF_TOKEN``, or ``hf auth login``), and re-runs are idempotent because ``create_repo`` is called
with ``exist_ok=True`` and ``upload_folder`` skips files whose content the repo already holds (it compares hashes;
a re-run that changes nothing makes no commit).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

logger = logging.getLogger(__name__)

T = TypeVar("T")

# HTTP statuses worth retrying: timeouts, rate limits and server-side failures.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRY_ATTEMPTS = 4
RETRY_BASE_DELAY_S = 2.0
RETRY_MAX_DELAY_S = 60.0
# Remote files a publish owns: removed when the new folder no longer has them (a checkpoint that became sharded, a
# dropped Pareto plot). Anything else someone added to the repo is left alone.
MANAGED_REMOTE_PATTERNS = ["*.safetensors", "*.safetensors.index.json", "pareto.png"]

# Patched by tests so retries take no time.
_sleep = time.sleep


class HubAccessError(RuntimeError):
    """The Hub cannot be used: offline mode, no token, a rejected token, or no connection."""


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level exception classes of the HTTP client(s) huggingface_hub may use (it moved from requests to
    httpx to httpx2 over its versions)."""
    classes: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (
        ("httpx2", "TransportError"),
        ("httpx", "TransportError"),
        ("requests", "ConnectionError"),
        ("requests", "Timeout"),
    ):
        try:
            classes.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(classes)


TRANSPORT_ERRORS = _transport_errors()


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def is_transient(error: BaseException) -> bool:
    """Whether trying the same call again may succeed (timeouts, dropped connections, 429 and 5xx answers)."""
    if isinstance(error, OfflineModeIsEnabled):  # a ConnectionError, but retrying cannot help
        return False
    if isinstance(error, HfHubHTTPError):
        return _status(error) in TRANSIENT_STATUS
    return isinstance(error, TRANSPORT_ERRORS)


def _retry_delay(error: BaseException, attempt: int) -> float:
    """Exponential backoff, or the server's ``Retry-After`` when it gives one (rate limits)."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return min(float(headers.get("Retry-After")), RETRY_MAX_DELAY_S)
    except (TypeError, ValueError):
        return min(RETRY_BASE_DELAY_S * 2**attempt, RETRY_MAX_DELAY_S)


def call_with_retries(fn: Callable[..., T], *args, attempts: int = RETRY_ATTEMPTS, **kwargs) -> T:
    """``fn(*args, **kwargs)``, tried again with backoff while it fails with a transient error."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            if not is_transient(error) or attempt == attempts - 1:
                raise
            delay = _retry_delay(error, attempt)
            logger.warning(
                "%s failed (%s); retrying in %.0f s (%d/%d)",
                getattr(fn, "__name__", fn),
                error,
                delay,
                attempt + 1,
                attempts - 1,
            )
            _sleep(delay)
    raise AssertionError("unreachable")


def check_hub_access(api: HfApi, token: str | None = None) -> str:
    """The user name the token belongs to; a :class:`HubAccessError` saying what to do when the Hub cannot be used."""
    if constants.is_offline_mode():
        raise HubAccessError(
            "Cannot push to the Hub: offline mode is on (HF_HUB_OFFLINE=1). Unset HF_HUB_OFFLINE to push, or publish "
            "with push=False (scripts/publish.py --no_push) to only write the local folders."
        )
    token = token or api.token or get_token()
    if not token:
        raise HubAccessError(
            "Not logged in to the Hugging Face Hub: no token given and none found. Run `hf auth login`, or set the "
            "HF_TOKEN environment variable to a token with write access (https://huggingface.co/settings/tokens), or "
            "pass token=...; or publish with push=False (--no_push) to only write the local folders."
        )
    try:
        return call_with_retries(api.whoami, token=token)["name"]
    except HfHubHTTPError as error:
        if _status(error) == 401:
            raise HubAccessError(
                "The Hub rejected the token (401 Unauthorized): it is invalid or expired. Run `hf auth login` again or "
                "set HF_TOKEN to a valid token with write access."
            ) from error
        raise HubAccessError(f"Could not check the Hub login at {constants.ENDPOINT}: {error}") from error
    except TRANSPORT_ERRORS as error:
        raise HubAccessError(
            f"Could not reach the Hub at {constants.ENDPOINT} ({type(error).__name__}: {error}). Check the network "
            "connection, proxy or HF_ENDPOINT, or publish with push=False (--no_push) to only write the local folders."
        ) from error


def upload_folder_to_repo(
    api: HfApi,
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload subnet with hf_supernet",
):
    """Create ``repo_id`` if needed and make its files match ``folder`` (unchanged files are not re-uploaded).

    ``private`` applies when the repo is created; an existing repo keeps its visibility. Returns the ``CommitInfo``.
    """
    call_with_retries(api.create_repo, repo_id, private=private, exist_ok=True, repo_type="model", token=token)
    return call_with_retries(
        api.upload_folder,
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        commit_message=commit_message,
        delete_patterns=MANAGED_REMOTE_PATTERNS,
        token=token,
    )
