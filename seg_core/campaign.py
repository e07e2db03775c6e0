"""The GPU campaign: what travels to a borrowed GPU machine, what comes back, and the decision at home.

A borrowed machine gives 15 minutes in all, runs a command for at most 10, takes at most 64 MiB of
working tree and returns at most 8 files (16 MiB each, 64 MiB per command) from its output folder.
So the campaign is two prepared commands (``device_commands``), checked here for size and length
before they are spent (``bundle``), a device-side script (``scripts/gpu_campaign.py``) that writes
each model as sha256-checked chunks (``write_chunks``) the moment it is trained, and a homecoming
(``home``) that reassembles them and replaces a shipped model only when a paired bootstrap over val
images puts its mIoU gain above zero. docs/gpu_campaign.md is the step-by-step.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import atomic_path

MiB = 2**20
CHUNK_BYTES = 16 * MiB  # the largest file that comes back
MAX_FILES_BACK = 8
MAX_BYTES_BACK = 64 * MiB
MAX_TRAVEL = 64 * MiB
MAX_COMMAND = 2000
MANIFEST = "manifest.json"
LOG_NAME = "campaign.log.gz"
BUNDLE = ".campaign"
WHEEL = "segmentation-models-pytorch==0.6.0"
EXCLUDE_MARK = "# seg_core.campaign detach: weights/ out of the index for a GPU run (undo: train_cli.py campaign restore)"


class CampaignError(ValueError):
    """A campaign step cannot go on; the message is one sentence for the user."""


# -- chunks ------------------------------------------------------------------------------------
def _write_atomic(path: Path, data: bytes) -> None:
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
        _write_atomic(part, piece)
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
        _write_atomic(target, b"".join(blobs))
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


# -- what travels --------------------------------------------------------------------------------
def _git(repo: Path, *args: str, check: bool = True) -> str:
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
    names = _git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
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
        exclude = Path(repo, _git(repo, "rev-parse", "--git-path", "info/exclude").strip())
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
    exclude = Path(repo, _git(repo, "rev-parse", "--git-path", "info/exclude").strip())
    text = exclude.read_text() if exclude.is_file() else ""
    if EXCLUDE_MARK not in text:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(exclude, (text.rstrip("\n") + "\n" if text else "").encode() + f"{EXCLUDE_MARK}\n/weights/\n".encode())
    if _git(repo, "ls-files", "weights").strip():
        _git(repo, "rm", "-r", "--cached", "-q", "weights")
    try:
        return check_travel(repo, [BUNDLE], leave=())
    except CampaignError:
        restore_weights(repo)
        raise


def restore_weights(repo: str | Path) -> None:
    """Put ``weights/`` back in the index (``git reset``) and drop the exclude lines; idempotent."""
    repo = Path(repo).resolve()
    if _git(repo, "ls-tree", "-r", "--name-only", "HEAD", "weights").strip():
        _git(repo, "reset", "-q", "--", "weights")
    exclude = Path(repo, _git(repo, "rev-parse", "--git-path", "info/exclude").strip())
    if exclude.is_file() and EXCLUDE_MARK in exclude.read_text():
        lines = exclude.read_text().splitlines()
        i = lines.index(EXCLUDE_MARK)
        del lines[i : i + 2]
        _write_atomic(exclude, ("\n".join(lines) + "\n").encode())


# -- homecoming ----------------------------------------------------------------------------------
def home(incoming: list[str | Path], out: str | Path, weights: str | Path, val: str | Path,
         limit: int | None = None, apply: bool = False, n_boot: int = 2000, batch_size: int = 16) -> dict:
    """Reassemble what the device commands returned, score each new model against the shipped one on
    val (paired bootstrap over images) and, with ``apply``, copy in those whose interval is above 0."""
    from .analysis import paired_bootstrap
    from .data import load_split
    from .evaluate import evaluate_many
    from .metrics import summarize
    from .runners import load_runner

    def per_image_confusions(path: Path, arch: str) -> tuple[np.ndarray, tuple[str, ...]]:
        runner = load_runner(path, arch=arch)
        return evaluate_many({arch: runner}, images, labels, batch_size)[arch]["image_matrices"], runner.config.class_names

    out, weights = Path(out), Path(weights)
    new, manifests = {}, {}
    for folder in incoming:
        got = reassemble(folder, out)
        new.update(got)
        manifests.update({arch: read_manifest(folder) for arch in got})
    images, labels = load_split(val, limit=limit)
    report = {"val": str(val), "pairs": len(images), "models": {}}
    for arch, path in new.items():
        cm_new, class_names = per_image_confusions(path, arch)
        entry = {"new": summarize(cm_new.sum(0), class_names), "checkpoint": str(path),
                 "campaign": {k: manifests[arch].get(k) for k in ("name", "device", "torch", "plan", "augment")},
                 "training": manifests[arch]["models"][arch].get("result")}
        shipped = weights / f"{arch}.safetensors"
        if shipped.is_file():
            cm_old, _ = per_image_confusions(shipped, arch)
            entry["shipped"] = summarize(cm_old.sum(0), class_names)
            boot = paired_bootstrap(cm_new, cm_old, n_boot=n_boot)
            entry["bootstrap"] = {k: v for k, v in boot.items() if k != "per_class"}
            entry["replace"] = entry["bootstrap"]["lo"] > 0
        else:
            entry["replace"] = True  # nothing shipped to beat
        report["models"][arch] = entry
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "home_report.json", json.dumps(report, indent=1).encode())
    _write_atomic(out / "model_card.md", model_card(report).encode())
    if apply:
        for arch, entry in report["models"].items():
            if entry["replace"]:
                with atomic_path(weights / f"{arch}.safetensors") as tmp:
                    shutil.copyfile(new[arch], tmp)
                entry["replaced"] = True
    return report


def _fmt(v, spec: str = ".4f") -> str:
    return "–" if v is None else format(v, spec) if isinstance(v, float) else str(v)


def _augment_words(augment: dict) -> str:
    return ", ".join(f"{k} {'-'.join(f'{x:g}' for x in v) if isinstance(v, (list, tuple)) else f'{v:g}'}"
                     for k, v in augment.items())


def model_card(report: dict) -> str:
    """The campaign's rows for ``weights/README.md``: recipe, device, speeds, epochs, the decision
    and per-class IoU, from the manifests and the homecoming's own evaluation."""
    models = report["models"]
    if not models:
        return ""
    first = next(iter(models.values()))["campaign"]
    lines = [f"GPU campaign on {first.get('device')}, torch {first.get('torch')}; val: {report['val']} "
             f"({report['pairs']} pairs). Recipe (all three, scripts/gpu_campaign.py): from scratch, AdamW, one-cycle LR with "
             "3 % linear warm-up, peak LR 2e-3 * sqrt(batch / 16), EMA 0.999 ** (batch / 16), 128x128 crops "
             "for 75 % of the steps then 256x256, CE (class weights, power 0.5) + 0.5 Dice"
             + (f"; augmentation {_augment_words(first['augment'])}." if first.get("augment") else "."), "",
             "| model | epochs | steps | batch | peak LR | compile | img/s 128 | img/s 256 | GPU GiB | train s | "
             "val mIoU | shipped | difference (95 % interval) | decision |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for arch, e in models.items():
        t = e.get("training") or {}
        bs = e.get("bootstrap")
        diff = f"{bs['delta']:+.4f} ({bs['lo']:+.4f} .. {bs['hi']:+.4f})" if bs else "–"
        lines.append(f"| {arch} | {_fmt(t.get('epochs'))} | {_fmt(t.get('steps'))} | {_fmt(t.get('batch'))} | "
                     f"{_fmt(t.get('lr'), 'g')} | {_fmt(t.get('compile'))} | {_fmt(t.get('img_s_crop'), '.0f')} | "
                     f"{_fmt(t.get('img_s_final'), '.0f')} | {_fmt(t.get('max_mem_gib'), '.1f')} | "
                     f"{_fmt(t.get('elapsed_s'), '.0f')} | {e['new']['miou']:.4f} | "
                     f"{_fmt(e.get('shipped', {}).get('miou'))} | {diff} | "
                     f"{'replace' if e['replace'] else 'keep shipped'} |")
    classes = list(next(iter(models.values()))["new"]["iou"])
    lines += ["", "| class | " + " | ".join(models) + " |", "| --- |" + " --- |" * len(models)]
    for c in classes:
        lines.append(f"| {c} | " + " | ".join(_fmt(e["new"]["iou"][c]) for e in models.values()) + " |")
    return "\n".join(lines) + "\n"


# -- the CLI's words -------------------------------------------------------------------------------
def _run_call(c: DeviceCommand) -> str:
    return json.dumps({"command": c.command, "carry": c.carry, "timeout_s": c.timeout_s})


def run_step(step: str, args) -> str:
    """``train_cli.py campaign <step>``: do it and return what to print."""
    repo = Path(args.repo)
    if step == "bundle":
        r = bundle(repo, args.data, repack=args.repack)
        s = r["sizes"]
        a, b = r["commands"]
        return (f"bundle {BUNDLE}/: train.npz {r['packs']['train'] / MiB:.1f} MiB, val.npz {r['packs']['val'] / MiB:.1f} MiB, "
                f"{r['wheel']} {r['wheel_bytes'] / 1024:.0f} KiB\n"
                f"what travels with weights/ detached: working tree {s['tree'] / MiB:.1f} MiB + {BUNDLE} "
                f"{s['carry'][BUNDLE] / MiB:.1f} MiB = {s['total'] / MiB:.1f} MiB of {MAX_TRAVEL // MiB} MiB\n"
                f"commands: A {len(a.command)}, B {len(b.command)} characters of {MAX_COMMAND}\n\n"
                "1. python train_cli.py campaign detach\n"
                f"2. device run, command A ({', '.join(a.archs)}; {a.timeout_s} s):\n   {_run_call(a)}\n"
                f"3. AT ONCE, no other step between (the machine stays warm ~30 s), command B "
                f"({', '.join(b.archs)}; {b.timeout_s} s):\n   {_run_call(b)}\n"
                "   then give_back\n"
                "4. python train_cli.py campaign restore      # always, even when a call failed; commit nothing before\n"
                "5. python train_cli.py campaign home --incoming <files_at of A> --incoming <files_at of B>\n")
    if step == "detach":
        s = detach_weights(repo)
        return (f"weights/ is out of the git index and ignored; what travels: working tree {s['tree'] / MiB:.1f} MiB "
                f"+ {BUNDLE} {s['carry'][BUNDLE] / MiB:.1f} MiB = {s['total'] / MiB:.1f} MiB of {MAX_TRAVEL // MiB} MiB.\n"
                "Make the two device calls now, then: python train_cli.py campaign restore (also after a failure).\n")
    if step == "restore":
        restore_weights(repo)
        n = len(_git(repo, "ls-files", "weights").split())
        return f"weights/ is back in the git index ({n} files) and no longer ignored.\n"
    if not args.incoming:
        raise CampaignError("home needs --incoming FOLDER for each device command's returned files")
    r = home(args.incoming, args.out, args.weights, args.val, limit=args.limit, apply=args.apply)
    lines = [f"on {r['val']} ({r['pairs']} pairs); report: {Path(args.out) / 'home_report.json'}, "
             f"rows for the model card: {Path(args.out) / 'model_card.md'}"]
    for arch, e in r["models"].items():
        line = f"{arch}: new mIoU {e['new']['miou']:.4f}"
        if "bootstrap" in e:
            bs = e["bootstrap"]
            line += (f", shipped {e['shipped']['miou']:.4f}, difference {bs['delta']:+.4f} "
                     f"({100 * bs['level']:.0f}% interval {bs['lo']:+.4f} .. {bs['hi']:+.4f})")
        line += ": " + ("REPLACE" if e["replace"] else "keep the shipped model")
        if e.get("replaced"):
            line += f" (copied into {args.weights})"
        lines.append(line)
    chosen = [a for a, e in r["models"].items() if e["replace"]]
    if chosen and not args.apply:
        lines.append("rerun with --apply to copy them into weights/")
    for arch in chosen if args.apply else []:
        lines.append(f"then: python train_cli.py export --weights {args.weights}/{arch}.safetensors --int8 "
                     f"--check {args.val}")
    if args.apply and chosen:
        lines.append(f"then: python train_cli.py eval --weights {args.weights}   # fp32 and int8, model card numbers")
    return "\n".join(lines) + "\n"
