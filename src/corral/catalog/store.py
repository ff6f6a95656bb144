"""The model store: GGUF files pulled from the Hugging Face Hub into the data dir.

File names come from the catalog only (``store_path``); nothing the network sends names a
path. Downloads resume (huggingface_hub keeps a partial file and asks for the rest with a
Range request), show a progress bar, and are checked against the catalog's sha256, or the
Hub's own (its ETag for a large file is the file's sha256) where the catalog has none.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from corral.catalog.schema import Catalog, Snapshot, source_path
from corral.core.errors import CorralError

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PullError(CorralError):
    """A pull that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class LocalState:
    snapshot: Snapshot
    path: Path | None
    local: bool
    size: int | None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def local_state(catalog: Catalog, snap: Snapshot, store_dir: Path) -> LocalState:
    if snap.source.kind == "upstream":
        return LocalState(snap, None, False, None)
    path = source_path(snap, store_dir)
    size = path.stat().st_size if path.is_file() else None
    return LocalState(snap, path, size is not None, size)


def pull(
    catalog: Catalog,
    name: str,
    store_dir: Path,
    *,
    endpoint: str | None = None,
    progress: bool = True,
) -> Path:
    """Download a snapshot's GGUF into the store; returns its path."""
    resolved = catalog.resolve(name)
    if resolved is None:
        raise PullError(f"`{name}` is not in the catalog (see `corral models`).")
    snap = resolved.snapshot
    src = snap.source
    if src.hf is None:
        where = {
            "path": "a local file",
            "package": "a file inside an installed Python package",
            "upstream": "an upstream server",
        }[src.kind]
        raise PullError(f"`{snap.id}` comes from {where}; there is nothing to pull.")
    hub = src.hf
    target = source_path(snap, store_dir)
    if target.is_file() and hub.sha256 is not None and sha256_of(target) == hub.sha256:
        return target
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise PullError(
            f"offline (HF_HUB_OFFLINE is set): cannot download {hub.repo}/{hub.file}. "
            f"Copy the file to {target} on this machine, or give the snapshot a `path` source."
        )
    if not progress:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    target.parent.mkdir(parents=True, exist_ok=True)
    hub_url = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if not _reachable(hub_url):
        raise PullError(
            f"cannot reach the Hub ({hub_url}) to download {hub.repo}/{hub.file}: "
            f"are we offline? Copy the file to {target}, or give the snapshot a `path` source."
        )
    try:
        downloaded = huggingface_hub.hf_hub_download(
            repo_id=hub.repo,
            filename=hub.file,
            revision=hub.revision,
            local_dir=target.parent,
            endpoint=hub_url,
            etag_timeout=10,
        )
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled) as exc:
        raise PullError(
            f"cannot reach the Hub ({hub_url}) to download {hub.repo}/{hub.file}: "
            f"are we offline? Copy the file to {target}, or give the snapshot a `path` source."
        ) from exc
    except (hf_errors.RepositoryNotFoundError, hf_errors.RemoteEntryNotFoundError) as exc:
        raise PullError(f"the Hub has no {hub.repo}/{hub.file} at {hub.revision}.") from exc
    except hf_errors.HfHubHTTPError as exc:
        raise PullError(f"the Hub refused {hub.repo}/{hub.file}: {exc}") from exc
    path = Path(downloaded)
    if path.resolve() != target.resolve():  # never trust a path the download names
        raise PullError(f"the download landed at {path}, not {target}")
    expected = hub.sha256 or _hub_sha256(target.parent, hub.file)
    actual = sha256_of(path)
    if expected is None:
        raise PullError(
            f"downloaded {path}, but neither the catalog nor the Hub gives a sha256 to check "
            f"it against (got {actual}); add `sha256: {actual}` to the catalog once verified."
        )
    if actual != expected:
        path.unlink()
        raise PullError(
            f"sha256 mismatch for {hub.repo}/{hub.file}: expected {expected}, got {actual}; "
            "the file was deleted."
        )
    return path


def _reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to the Hub opens. huggingface_hub retries a refused
    connection five times with backoff (23 s here) before it gives up; an offline machine
    should hear so at once. Retries still cover a download that breaks midway."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return True
    except OSError:  # refused, no route, no DNS, timed out
        return False


def _hub_sha256(folder: Path, filename: str) -> str | None:
    """The ETag huggingface_hub recorded for the download (the sha256 of an LFS file)."""
    meta = folder / ".cache" / "huggingface" / "download" / f"{filename}.metadata"
    try:
        lines = meta.read_text().splitlines()
    except OSError:
        return None
    etag = lines[1].strip().strip('"') if len(lines) > 1 else ""
    return etag if SHA256.match(etag) else None
