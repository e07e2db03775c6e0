"""Ship the apps as a Hugging Face Space in one call.

``deploy_space`` (``python train_cli.py deploy-space ORG/NAME``) talks to the Hub only through
``huggingface_hub.HfApi`` (``create_repo``, ``upload_folder``, Space variables), never git: the
Hub then stores large files with LFS/Xet itself, which a git push of this repository's history
(raw weight blobs) cannot do. ``plan_space`` says what would be sent, file by file, and is all
that ``--dry-run`` runs. What a Space receives is an allowlist (code, ``requirements.txt``,
``.streamlit/``, the KITTI ``examples/``, the weights unless they live in a model repo) minus an ignore list (data, runs,
packs, caches, tests, secrets); the README and the requirements are generated for the Space.

The deployed app finds its weights with ``seg_core.served_weights``. Nothing here imports
streamlit or gradio.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import settings
from .registry import ARCH_NAMES
from .served_weights import CHECKPOINTS, first_line

SDKS = {"streamlit": "app.py", "gradio": "gradio_app.py"}  # sdk -> app_file
PYTHON_VERSION = "3.11"  # the version the project is developed and tested with
#: What a Space receives from the repository (paths relative to its root; ``*`` spans folders).
SPACE_ALLOW = ["app.py", "gradio_app.py", "gradio_tabs/*.py", "app_pages/*.py", "ui/*.py", "seg_core/*.py", "requirements.txt",
               ".streamlit/*.toml", "pyproject.toml", "README.md",
               # the KITTI scenes the gallery and the val pages show there (CC BY-NC-SA 3.0), with their credit
               "examples/*.png", "examples/ATTRIBUTION.md", "examples/manifest.json"]
#: The weights folder's files that are ours, by name: the models' files, exports, logs and card.
#: Anything else there (a ``.env``, notes, a photo) stays home.
WEIGHTS_FILES = [f"{n}{kind}" for n in ARCH_NAMES for kind in
                 (".safetensors", ".int8.xml", ".int8.bin", ".xml", ".bin", ".int8.onnx", ".onnx", "_*.csv", "_*.html")
                 ] + ["ensemble.json", "corruption_bench.json", "README.md"]
WEIGHTS_IN_SPACE = [f"weights/{name}" for name in WEIGHTS_FILES]
#: Never sent, even where an allow pattern matches: data (licence), runs, packs, caches, tests, secrets.
SPACE_IGNORE = ["data/*", "runs/*", "packs/*", "tests/*", "benchmarks/*", "docs/*", ".venv/*", "*__pycache__*",
                "*.pyc", "*.tmp", "*.npz", "*/.export-*", ".streamlit/secrets.toml", ".*.tmp"]
#: The model repo gets the weights folder: checkpoints, exported files, model card, logs.
WEIGHTS_REPO_ALLOW = WEIGHTS_FILES
WEIGHTS_REPO_IGNORE = ["*.tmp", ".*"]
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class DeployError(Exception):
    """A deploy that cannot go on; the message is one sentence for the user."""


@dataclass
class Upload:
    """One ``upload_folder`` call: which repo, the patterns, and the files they select (with sizes)."""

    repo_id: str
    repo_type: str  # "space" or "model"
    folder: Path  # the folder the patterns are applied to
    allow: list[str]
    ignore: list[str]
    files: dict[str, int] = field(default_factory=dict)  # path in repo -> bytes, sorted
    generated: dict[str, str] = field(default_factory=dict)  # path in repo -> text written for the upload

    @property
    def total(self) -> int:
        return sum(self.files.values())


@dataclass
class SpacePlan:
    space: Upload
    weights: Upload | None
    sdk: str
    sdk_version: str
    app_file: str
    variables: dict[str, str]  # Space variables; the revision is filled in once the weights are pushed
    private: bool = False


def select_files(folder: str | Path, allow: list[str], ignore: list[str]) -> list[str]:
    """The files of ``folder`` that ``upload_folder`` would send with these patterns, as sorted
    posix paths: the same listing and the same ``filter_repo_objects`` (plus the default ignores)."""
    from huggingface_hub.utils import filter_repo_objects
    from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS

    folder = Path(folder)
    ignore = [*ignore, *DEFAULT_IGNORE_PATTERNS]
    found = []
    for top, dirs, names in os.walk(folder):
        rel_top = Path(top).relative_to(folder).as_posix()
        prefix = "" if rel_top == "." else f"{rel_top}/"
        # Skip folders every file of which is ignored (.venv, runs/...): a big tree is never listed.
        dirs[:] = [d for d in dirs if list(filter_repo_objects([f"{prefix}{d}/"], ignore_patterns=ignore))]
        found += [f"{prefix}{n}" for n in names if (Path(top) / n).is_file()]
    return sorted(filter_repo_objects(found, allow_patterns=allow, ignore_patterns=ignore))


def sdk_version(sdk: str, requirements: str = "") -> str:
    """The SDK version the Space should run: the pin in requirements.txt, else the installed one."""
    match = re.search(rf"^\s*{sdk}\s*==\s*([\w.]+)", requirements, flags=re.M | re.I)
    if match:
        return match.group(1)
    try:
        return importlib.metadata.version(sdk)
    except importlib.metadata.PackageNotFoundError:
        raise DeployError(f"cannot tell which {sdk} version the Space should run: pin it in requirements.txt "
                          f"({sdk}==X.Y.Z) or install it here") from None


def space_requirements(requirements: str) -> str:
    """requirements.txt for a CPU Space: torch and torchvision from PyTorch's CPU-only index
    (no CUDA wheels to download and install), without the test-only packages."""
    lines = [f"--extra-index-url {CPU_TORCH_INDEX}"]
    skip = False
    for line in requirements.splitlines():
        if line.strip().lower().startswith("# tests"):
            skip = True  # the section of test-only packages, to its end or the next heading
            continue
        if skip and line.strip().startswith("#"):
            skip = False
        if skip:
            continue
        lines.append(re.sub(r"^(torch|torchvision)\s*==\s*([\w.]+?)(\+\w+)?\s*$", r"\1==\2+cpu", line))
    return "\n".join(lines) + "\n"


def space_readme(sdk: str, version: str, app_file: str, weights_repo: str | None, title: str) -> str:
    """The Space's README: front matter for the Hub (SDK, versions, entry point) and a short card."""
    from huggingface_hub import SpaceCardData

    meta = SpaceCardData(title=title, sdk=sdk, sdk_version=version, python_version=PYTHON_VERSION,
                         app_file=app_file, license="other", models=[weights_repo] if weights_repo else None,
                         emoji="🚗", colorFrom="indigo", colorTo="green", pinned=False,
                         short_description="U-Net, FCN-VGG16 and FCN-ResNet50 on Cityscapes, side by side")
    weights = (f"[{weights_repo}](https://huggingface.co/{weights_repo}), at the commit in the Space variable "
               "`SEG_WEIGHTS_REVISION`" if weights_repo else "`weights/` of this Space")
    return (f"---\n{meta.to_yaml()}\n---\n\n# {title}\n\n"
            "Drop a street photo: three semantic-segmentation models trained from scratch on the Cityscapes "
            "Image Pairs (19 classes) segment it side by side.\n\n"
            f"- Weights: {weights}; the models run as int8 OpenVINO graphs on the Space's CPU.\n"
            "- Public mode (`SEG_PUBLIC=1`): visitors cannot point the app at folders of the server; no "
            "Cityscapes image ships with the Space.\n"
            "- Example scenes: 16 frames of the KITTI semantic segmentation benchmark (Geiger, Alhaija et al.), "
            "CC BY-NC-SA 3.0, cropped and resized (`examples/ATTRIBUTION.md`).\n"
            "- Intended use and terms: research and teaching demos only. The models were trained on Cityscapes, "
            "whose licence allows non-commercial research use only; the weights, derived from it, carry the same "
            "restriction (https://www.cityscapes-dataset.com/license/).\n\n"
            "Deployed with `python train_cli.py deploy-space` from the project repository.\n")


def plan_space(space_id: str, sdk: str = "streamlit", weights_repo: str | None = None, root: str | Path | None = None,
               private: bool = False) -> SpacePlan:
    """Everything a deploy would send, computed without touching the Hub (all of ``--dry-run``)."""
    root = Path(root or settings.ROOT)
    for repo_id, flag in ((space_id, "the Space"), (weights_repo, "--weights-repo")):
        if repo_id is not None and not _REPO_ID.match(repo_id):
            raise DeployError(f"{flag} must be ORG/NAME (letters, digits, '-', '_', '.'), not {repo_id!r}")
    if sdk not in SDKS:
        raise DeployError(f"unknown --sdk {sdk!r}; choose one of {', '.join(SDKS)}")
    weights = root / "weights"
    present = [name for name in CHECKPOINTS if (weights / name).is_file()]
    if not present:
        raise DeployError(f"{weights} holds none of {', '.join(CHECKPOINTS)}: there are no weights to deploy")
    req_path = root / "requirements.txt"
    if not req_path.is_file():
        raise DeployError(f"{req_path} is missing: a Space installs its packages from it")
    requirements = req_path.read_text()
    version, app_file = sdk_version(sdk, requirements), SDKS[sdk]
    if not (root / app_file).is_file():
        raise DeployError(f"{root / app_file} is missing: it is the Space's entry point for --sdk {sdk}")

    allow = SPACE_ALLOW + ([] if weights_repo else WEIGHTS_IN_SPACE)
    space = Upload(space_id, "space", root, allow, list(SPACE_IGNORE))
    space.generated = {
        "README.md": space_readme(sdk, version, app_file, weights_repo, "Cityscapes Segmentation Workbench"),
        "requirements.txt": space_requirements(requirements),
    }
    _fill(space)
    upload = None
    if weights_repo:
        upload = Upload(weights_repo, "model", weights, list(WEIGHTS_REPO_ALLOW), list(WEIGHTS_REPO_IGNORE))
        _fill(upload)
    # MALLOC_ARENA_MAX: glibc otherwise gives each new thread (a Streamlit session's script, a
    # request's worker) a heap of its own that keeps what it freed (docs/serving.md, "Streamlit sessions").
    variables = {"SEG_PUBLIC": "1", "MALLOC_ARENA_MAX": "2"}
    if weights_repo:
        variables.update(SEG_WEIGHTS_REPO=weights_repo, SEG_WEIGHTS_REVISION="")
    return SpacePlan(space, upload, sdk, version, app_file, variables, private)


def _fill(upload: Upload) -> None:
    on_disk = {p: (upload.folder / p).stat().st_size for p in select_files(upload.folder, upload.allow, upload.ignore)}
    on_disk.update({p: len(text.encode()) for p, text in upload.generated.items()})
    upload.files = dict(sorted(on_disk.items()))


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def describe(plan: SpacePlan) -> str:
    """What ``--dry-run`` prints: every file with its size, the totals, the variables."""
    lines = []
    uploads = [u for u in (plan.weights, plan.space) if u is not None]
    for upload in uploads:
        kind = "Space" if upload.repo_type == "space" else "model repo"
        lines.append(f"{kind} {upload.repo_id}: {len(upload.files)} files, {_size(upload.total)} "
                     f"({upload.total} bytes), from {upload.folder}")
        for path, size in upload.files.items():
            lines.append(f"  {_size(size):>10}  {path}" + ("  (generated)" if path in upload.generated else ""))
    total = sum(u.total for u in uploads)
    lines.append(f"total: {sum(len(u.files) for u in uploads)} files, {_size(total)} ({total} bytes)")
    lines.append(f"Space settings: sdk {plan.sdk} {plan.sdk_version}, app_file {plan.app_file}, "
                 f"python {PYTHON_VERSION}, {'private' if plan.private else 'public'}")
    shown = {k: v or "<the commit of the weights upload>" for k, v in plan.variables.items()}
    lines.append("Space variables: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    return "\n".join(lines)


def deploy_space(plan: SpacePlan, token: str | None = None, log=print) -> dict[str, str]:
    """Send a plan to the Hub: the weights repo first (its commit pins the Space), then the Space's
    repo, variables and files. Returns the URLs and commits made; raises ``DeployError``."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    done = {}
    if plan.weights is not None:
        w = plan.weights
        _hub(f"create the model repo {w.repo_id}", api.create_repo, w.repo_id, repo_type="model",
             private=plan.private, exist_ok=True)
        info = _hub(f"upload the weights to {w.repo_id}", api.upload_folder, repo_id=w.repo_id, repo_type="model",
                    folder_path=str(w.folder), allow_patterns=w.allow, ignore_patterns=w.ignore,
                    commit_message="Weights: checkpoints, int8 files, model card")
        plan.variables["SEG_WEIGHTS_REVISION"] = done["weights_commit"] = info.oid
        done["weights_url"] = f"https://huggingface.co/{w.repo_id}/tree/{info.oid}"
        log(f"weights: {len(w.files)} files, {_size(w.total)} -> {w.repo_id} at commit {info.oid}")

    s = plan.space
    url = _hub(f"create the Space {s.repo_id}", api.create_repo, s.repo_id, repo_type="space", space_sdk=plan.sdk,
               private=plan.private, exist_ok=True)
    # Variables before the files: the build the upload starts already sees them.
    stale = set(_hub(f"read the variables of {s.repo_id}", api.get_space_variables, s.repo_id) or {})
    for key in sorted(stale & {"SEG_WEIGHTS_REPO", "SEG_WEIGHTS_REVISION"} - set(plan.variables)):
        _hub(f"remove the variable {key} of {s.repo_id}", api.delete_space_variable, s.repo_id, key)
    for key, value in plan.variables.items():
        _hub(f"set the variable {key} of {s.repo_id}", api.add_space_variable, s.repo_id, key, value)
    with tempfile.TemporaryDirectory(prefix="seg-space-") as tmp:
        staged = _stage(s, Path(tmp))
        info = _hub(f"upload the app to {s.repo_id}", api.upload_folder, repo_id=s.repo_id, repo_type="space",
                    folder_path=str(staged), allow_patterns=s.allow, ignore_patterns=s.ignore,
                    commit_message=f"Deploy the {plan.sdk} app")
    done.update(space_url=str(url), space_commit=info.oid)
    log(f"space: {len(s.files)} files, {_size(s.total)} -> {url} at commit {info.oid}")
    return done


def _stage(upload: Upload, folder: Path) -> Path:
    """The upload's files in one folder: links to the repository's files, the generated ones written
    out, so that one ``upload_folder`` makes one commit (one Space build)."""
    for path in upload.files:
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path in upload.generated:
            target.write_text(upload.generated[path])
        else:
            os.symlink((upload.folder / path).resolve(), target)
    return folder


def _hub(what: str, call, *args, **kwargs):
    """One Hub call; any refusal or network failure becomes a ``DeployError`` naming the step."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    failures: tuple[type[BaseException], ...] = (HfHubHTTPError, HFValidationError, OSError, ConnectionError)
    try:
        import httpx2  # huggingface_hub's HTTP client

        failures += (httpx2.TransportError,)
    except ImportError:
        pass
    try:
        return call(*args, **kwargs)
    except failures as err:
        raise DeployError(f"could not {what}: {type(err).__name__}: {first_line(err)}") from None
