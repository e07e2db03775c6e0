"""What comes back from a GPU campaign's device call: the limits on returned files, each model as
sha256-checked chunks (``write_chunks``, on the device), the manifest, and their reassembly at home
(``reassemble``). No torch import: ``scripts/gpu_campaign.py`` uses it before torch loads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .files import atomic_path

MiB = 2**20
CHUNK_BYTES = 16 * MiB  # the largest file that comes back
MAX_FILES_BACK = 8
MAX_BYTES_BACK = 64 * MiB
MANIFEST = "manifest.json"
LOG_NAME = "campaign.log.gz"


class CampaignError(ValueError):
    """A campaign step cannot go on; the message is one sentence for the user."""


def write_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_chunks(source: str | Path, out_dir: str | Path, name: str, chunk_bytes: int = CHUNK_BYTES) -> dict:
    """Split ``source`` into ``out_dir/<name>.partN`` files of at most ``chunk_bytes``; returns the
    manifest entry (whole-file and per-part sizes and sha256)."""
    source, out_dir = Path(source), Path(out_dir)
    data = source.read_bytes()
    parts = []
    for i, start in enumerate(range(0, max(1, len(data)), chunk_bytes)):
        piece = data[start : start + chunk_bytes]
        part = out_dir / f"{name}.part{i}"
        write_atomic(part, piece)
        parts.append({"name": part.name, "bytes": len(piece), "sha256": hashlib.sha256(piece).hexdigest()})
    return {"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "parts": parts}


def _manifest_path(folder: str | Path) -> Path:
    """``folder/manifest.json``, or the one manifest below it (the device tool may nest what it returns)."""
    folder = Path(folder)
    found = [folder / MANIFEST] if (folder / MANIFEST).is_file() else sorted(folder.rglob(MANIFEST))
    if len(found) != 1:
        raise CampaignError(f"{folder} holds {'no' if not found else 'more than one'} {MANIFEST}: "
                            "give the folder of one command's output of scripts/gpu_campaign.py")
    return found[0]


def read_manifest(folder: str | Path) -> dict:
    path = _manifest_path(folder)
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise CampaignError(f"{path} is not valid JSON ({err})") from None


def reassemble(folder: str | Path, dest: str | Path) -> dict[str, Path]:
    """Join the chunks a device command returned into ``dest/<arch>.safetensors``, each part and the
    whole checked against the manifest's sha256; returns ``{arch: path}``."""
    folder, dest = _manifest_path(folder).parent, Path(dest)
    manifest = read_manifest(folder)
    dest.mkdir(parents=True, exist_ok=True)
    done = {}
    for arch, entry in manifest.get("models", {}).items():
        h, blobs = hashlib.sha256(), []
        for part in entry["parts"]:
            path = folder / part["name"]
            if not path.is_file():
                raise CampaignError(f"{arch}: chunk {part['name']} is missing from {folder}")
            blob = path.read_bytes()
            if len(blob) != part["bytes"] or hashlib.sha256(blob).hexdigest() != part["sha256"]:
                raise CampaignError(f"{arch}: chunk {part['name']} does not match its sha256 (truncated or corrupt)")
            h.update(blob)
            blobs.append(blob)
        if h.hexdigest() != entry["sha256"]:
            raise CampaignError(f"{arch}: the reassembled file does not match its sha256")
        target = dest / entry["file"]
        write_atomic(target, b"".join(blobs))
        done[arch] = target
    if not done:
        raise CampaignError(f"{folder}/{MANIFEST} lists no trained model (did the command stop before one finished?)")
    return done


def check_return(out_dir: str | Path) -> list[str]:
    """What in ``out_dir`` would not come back from the device machine (empty when all fits)."""
    out_dir = Path(out_dir)
    files = [p for p in out_dir.rglob("*") if p.is_file()]
    problems = []
    if len(files) > MAX_FILES_BACK:
        problems.append(f"{len(files)} files, more than {MAX_FILES_BACK}")
    for p in files:
        if p.stat().st_size > CHUNK_BYTES:
            problems.append(f"{p.name} is {p.stat().st_size} bytes, over {CHUNK_BYTES}")
        if len(p.relative_to(out_dir).parts) > 3:
            problems.append(f"{p.relative_to(out_dir)} is more than 2 folders down")
    total = sum(p.stat().st_size for p in files)
    if total > MAX_BYTES_BACK:
        problems.append(f"{total} bytes in all, over {MAX_BYTES_BACK}")
    return problems
