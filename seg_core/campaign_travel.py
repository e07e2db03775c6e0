"""What travels to a GPU campaign's device machine: the bundle (packs and the smp wheel, ignored by
git), its size and the commands' length checked before a call is spent, the two commands
(``device_commands``) and the recipe's augmentation, and taking ``weights/`` out of the git index
around the calls (``detach_weights`` / ``restore_weights``)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .campaign_chunks import CampaignError, MiB, write_atomic

MAX_TRAVEL = 64 * MiB
MAX_COMMAND = 2000
BUNDLE = ".campaign"
WHEEL = "segmentation-models-pytorch==0.6.0"
EXCLUDE_MARK = "# seg_core.campaign detach: weights/ out of the index for a GPU run (undo: train_cli.py campaign restore)"


def git(repo: Path, *args: str, check: bool = True) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=check)
    except FileNotFoundError:
        raise CampaignError("git is not installed; the campaign steps need it") from None
    except subprocess.CalledProcessError as err:
        line = (err.stderr or err.stdout or "").strip().splitlines()
        raise CampaignError(f"git {' '.join(args)} failed in {repo}: {line[0] if line else err}") from None
    return done.stdout


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def travel_bytes(repo: str | Path, carry: list[str], leave: tuple[str, ...] = ("weights/",)) -> dict:
    """Bytes that a device call sends: tracked and untracked-not-ignored files (minus ``leave``,
    the folders taken out of the index for the call) and the ``carry`` paths."""
    repo = Path(repo)
    names = git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    tree = sum(_size(repo / n) for n in set(names) if n and not n.startswith(leave) and (repo / n).is_file())
    carried = {c: _size(repo / c) for c in carry}
    return {"tree": tree, "carry": carried, "total": tree + sum(carried.values())}


def check_travel(repo: str | Path, carry: list[str], leave: tuple[str, ...] = ("weights/",)) -> dict:
    sizes = travel_bytes(repo, carry, leave)
    if sizes["total"] > MAX_TRAVEL:
        parts = ", ".join(f"{k} {v / MiB:.1f} MiB" for k, v in sizes["carry"].items())
        raise CampaignError(f"what would travel is {sizes['total'] / MiB:.1f} MiB (working tree "
                            f"{sizes['tree'] / MiB:.1f} MiB, {parts}), over the {MAX_TRAVEL // MiB} MiB limit: "
                            "ignore or carry less")
    return sizes


@dataclass
class DeviceCommand:
    """One ``run`` call of the campaign: the command, its carry list and its timeout."""

    name: str
    archs: tuple[str, ...]
    command: str
    carry: list[str]
    timeout_s: int


#: The robustness augmentation of the campaign's recipe (issue 33): the photometric and camera ops
#: (TrainConfig fields) of the CPU continuation ``runs/unet_robust``, and not a wider scale range (a
#: probe with zoom 0.5-2.0 lost val mIoU). ``scripts/gpu_campaign.py --plain-augment`` turns it off.
AUGMENT = {"brightness": 0.4, "contrast": 0.5, "saturation": 0.4, "hue": 0.05, "gamma": 0.4,
           "blur_p": 0.25, "blur_sigma": 2.5, "motion_length": 11.0, "noise_p": 0.2, "noise_std": 0.15,
           "jpeg_p": 0.2, "jpeg_quality": (10.0, 75.0)}

#: (name, archs trained and returned, archs only timed for the shared epoch count, script budget s,
#: compile trial cap s, run timeout s). ResNet-50 alone fills one command's 64 MiB; U-Net + VGG16
#: fill the other. B's trial cap is longer: VGG16 has the most training time for compile to pay back.
COMMANDS = (("A", ("fcn_resnet50",), ("unet", "fcn_vgg16"), 190, 30, 210),
            ("B", ("unet", "fcn_vgg16"), (), 400, 60, 420))


def device_commands(bundle: str = BUNDLE, python: str = "python3", install: bool = True) -> list[DeviceCommand]:
    """The two campaign commands, as pasted into the device tool (run from the repo root there)."""
    setup = (f"{python} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --root-user-action=ignore "
             f"--target /tmp/site {bundle}/wheels/*.whl && export PYTHONPATH=/tmp/site || exit 1; ")
    out = []
    for name, archs, timed, budget, trial, timeout in COMMANDS:
        script = (f"PYTHONUNBUFFERED=1 {python} scripts/gpu_campaign.py --name {name} --archs {','.join(archs)} "
                  + (f"--plan-archs {','.join(timed)} " if timed else "")
                  + f"--train {bundle}/train.npz --val {bundle}/val.npz --budget {budget} --compile-trial-s {trial} "
                  f"--out \"$OUT\"")
        out.append(DeviceCommand(name, archs, (setup if install else "") + script, [bundle], timeout))
    return out


def _wheel(bundle: Path) -> Path:
    wheels = sorted((bundle / "wheels").glob("segmentation_models_pytorch-*.whl"))
    if wheels:
        return wheels[-1]
    (bundle / "wheels").mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "-d", str(bundle / "wheels"), WHEEL]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted((bundle / "wheels").glob("segmentation_models_pytorch-*.whl"))
    if done.returncode or not wheels:
        raise CampaignError(f"could not download the {WHEEL} wheel (no network?): run {' '.join(cmd[2:])} by hand")
    return wheels[-1]


def _ensure_ignored(repo: Path, path: str) -> None:
    """The bundle must be ignored by git, or it would travel (and count) without being carried."""
    if subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", path]).returncode != 0:
        exclude = Path(repo, git(repo, "rev-parse", "--git-path", "info/exclude").strip())
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with open(exclude, "a") as f:
            f.write(f"\n/{path.strip('/')}/\n")


def bundle(repo: str | Path, data: str | Path, bundle_dir: str = BUNDLE, repack: bool = False) -> dict:
    """Write the packs and the smp wheel into the (ignored) bundle folder, then check what travels
    and the commands' length; returns the commands and the sizes."""
    from .data import pack_split

    repo = Path(repo).resolve()
    folder = repo / bundle_dir
    folder.mkdir(parents=True, exist_ok=True)
    _ensure_ignored(repo, bundle_dir)
    packs = {}
    for split in ("train", "val"):
        pack = folder / f"{split}.npz"
        if repack or not pack.is_file():
            pack_split(Path(data) / split, pack)
        packs[split] = pack.stat().st_size
    wheel = _wheel(folder)
    sizes = check_travel(repo, [bundle_dir])
    commands = device_commands(bundle_dir)
    for c in commands:
        if len(c.command) > MAX_COMMAND:
            raise CampaignError(f"command {c.name} is {len(c.command)} characters, over the {MAX_COMMAND} limit")
    return {"packs": packs, "wheel": wheel.name, "wheel_bytes": wheel.stat().st_size, "sizes": sizes,
            "commands": commands}


def detach_weights(repo: str | Path) -> dict:
    """Take ``weights/`` out of the index and ignore it, so a device call leaves it behind; then check
    what travels. Undo with ``restore_weights`` right after the calls, even when one failed."""
    repo = Path(repo).resolve()
    exclude = Path(repo, git(repo, "rev-parse", "--git-path", "info/exclude").strip())
    text = exclude.read_text() if exclude.is_file() else ""
    if EXCLUDE_MARK not in text:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(exclude, (text.rstrip("\n") + "\n" if text else "").encode() + f"{EXCLUDE_MARK}\n/weights/\n".encode())
    if git(repo, "ls-files", "weights").strip():
        git(repo, "rm", "-r", "--cached", "-q", "weights")
    try:
        return check_travel(repo, [BUNDLE], leave=())
    except CampaignError:
        restore_weights(repo)
        raise


def restore_weights(repo: str | Path) -> None:
    """Put ``weights/`` back in the index (``git reset``) and drop the exclude lines; idempotent."""
    repo = Path(repo).resolve()
    if git(repo, "ls-tree", "-r", "--name-only", "HEAD", "weights").strip():
        git(repo, "reset", "-q", "--", "weights")
    exclude = Path(repo, git(repo, "rev-parse", "--git-path", "info/exclude").strip())
    if exclude.is_file() and EXCLUDE_MARK in exclude.read_text():
        lines = exclude.read_text().splitlines()
        i = lines.index(EXCLUDE_MARK)
        del lines[i : i + 2]
        write_atomic(exclude, ("\n".join(lines) + "\n").encode())
