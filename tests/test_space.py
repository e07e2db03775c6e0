"""deploy-space and the weights at start-up, offline: the Hub is observed at its public boundary.

``HfApi``'s methods are replaced by recorders (their arguments, the files that ``upload_folder``
would send, the generated README), and ``huggingface_hub.snapshot_download`` by a stand-in that
returns a folder or raises the library's own errors. The file list is computed the way
``upload_folder`` computes it: every file under ``folder_path``, then ``filter_repo_objects`` with
the call's patterns and the library's default ignores. The real upload is not tested here.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
from huggingface_hub import CommitInfo, RepoUrl
from huggingface_hub.errors import (HfHubHTTPError, HFValidationError, LocalEntryNotFoundError,
                                    RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError)
from huggingface_hub.utils import filter_repo_objects
from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS

from seg_core import served_weights, settings, space
from train_cli import main

SPACE, MODEL = "cityscapes-lab/seg-demo", "cityscapes-lab/seg-weights"
REQUIREMENTS = """# pinned
torch==2.14.1
torchvision==0.29.1
numpy>=2.0,<3
# apps
streamlit==1.67.0
gradio==6.31.0
# tests
pytest>=8
hypothesis>=6.100
"""
#: The checkout the fake repository holds: what a Space must get, and what it must never get.
SENT = {"app.py": "import streamlit\n", "gradio_app.py": "import gradio\n", "seg_core/__init__.py": "",
        "seg_core/space.py": "x = 1\n", "ui/common.py": "y = 2\n", "app_pages/compare.py": "z = 3\n",
        ".streamlit/config.toml": "[server]\nmaxUploadSize = 20\n", "pyproject.toml": "[project]\nname = 'x'\n",
        "examples/kitti_000000_10.png": "png", "examples/ATTRIBUTION.md": "# KITTI\n", "examples/manifest.json": "{}"}
WEIGHTS = {"weights/unet.safetensors": "u" * 3000, "weights/unet.int8.xml": "<xml/>", "weights/unet.int8.bin": "b" * 500,
           "weights/README.md": "# Shipped weights\n", "weights/unet_train_log.csv": "epoch,miou\n"}
NEVER = {"data/val/1.jpg": "jpg", "runs/unet/best.safetensors": "w", "packs/train.npz": "npz", "tests/test_x.py": "t",
         ".venv/lib/site.py": "v", "benchmarks/load_test.py": "b", "seg_core/__pycache__/space.cpython-311.pyc": "c",
         ".streamlit/secrets.toml": "token = 'hf_secret'", "weights/unet.safetensors.tmp": "half",
         "weights/.export-123/unet.onnx": "partial", "notes.txt": "n", ".git": "gitdir: elsewhere",
         # stray files in weights/: only the known weight files are sent
         "weights/.env": "HF_TOKEN=hf_secret", "weights/notes.md": "n", "weights/street.jpg": "jpg",
         "weights/other.safetensors": "w"}


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A repository as a developer has it: code, weights, and everything that must stay home."""
    root = tmp_path / "repo"
    for rel, text in {**SENT, **WEIGHTS, **NEVER, "requirements.txt": REQUIREMENTS, "README.md": "# dev\n"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    monkeypatch.setattr(settings, "ROOT", root)
    return root


def listed(folder: str | Path, allow, ignore) -> dict[str, str]:
    """What upload_folder sends from ``folder`` with these patterns: {path in repo: content}."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.glob("**/*")) if p.is_file()}
    keep = filter_repo_objects(files, allow_patterns=allow, ignore_patterns=[*(ignore or []), *DEFAULT_IGNORE_PATTERNS])
    return {rel: files[rel].read_text() for rel in keep}


@pytest.fixture
def hub(monkeypatch):
    """HfApi's methods replaced by recorders; ``hub.calls`` is the ordered list of (method, arguments)."""
    calls, variables = [], {"SEG_WEIGHTS_REPO": "old/repo", "SEG_WEIGHTS_REVISION": "0" * 40, "OTHER": "kept"}

    def record(name):
        def method(self, *args, **kwargs):
            calls.append((name, args, kwargs))
            if name == "create_repo":
                kind = kwargs.get("repo_type")
                return RepoUrl(f"https://huggingface.co/{'spaces/' if kind == 'space' else ''}{args[0]}")
            if name == "upload_folder":
                kwargs["sent"] = listed(kwargs["folder_path"], kwargs["allow_patterns"], kwargs["ignore_patterns"])
                oid = ("a" if kwargs["repo_type"] == "model" else "b") * 40
                return CommitInfo(commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/{oid}",
                                  commit_message=kwargs["commit_message"], commit_description="", oid=oid)
            if name == "get_space_variables":
                return dict(variables)
            return None
        return method

    for name in ("create_repo", "upload_folder", "get_space_variables", "add_space_variable", "delete_space_variable"):
        monkeypatch.setattr(huggingface_hub.HfApi, name, record(name))
    hub.calls = calls
    return hub


def called(hub, name):
    return [(args, kwargs) for n, args, kwargs in hub.calls if n == name]


def front_matter(readme: str) -> dict:
    card = huggingface_hub.SpaceCard(readme)
    return card.data.to_dict()


def test_dry_run_prints_every_file_with_its_size_and_calls_nothing(checkout, hub, capsys):
    assert main(["deploy-space", SPACE, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert hub.calls == []
    shown = {path: size for size, path in re.findall(r"^\s+(\d+(?:\.\d)? (?:B|KiB|MiB|GiB))\s+(\S+)", out, flags=re.M)}
    expected = {*SENT, *WEIGHTS, "README.md", "requirements.txt"}
    assert set(shown) == expected
    assert shown["weights/unet.safetensors"] == "2.9 KiB" and shown["app.py"] == "17 B"
    plan = space.plan_space(SPACE)
    total = sum(plan.space.files.values())
    assert f"total: {len(expected)} files" in out and f"({total} bytes)" in out
    assert total == sum(len(text.encode()) for text in plan.space.generated.values()) + sum(
        len(text.encode()) for rel, text in {**SENT, **WEIGHTS}.items())
    assert "Space variables: SEG_PUBLIC=1, MALLOC_ARENA_MAX=2" in out and "dry run: nothing was sent" in out


def test_dry_run_with_weights_repo_lists_both_repos(checkout, hub, capsys):
    assert main(["deploy-space", SPACE, "--weights-repo", MODEL, "--sdk", "gradio", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert hub.calls == []
    model_part, space_part = out.split(f"Space {SPACE}:")
    assert f"model repo {MODEL}: 5 files" in model_part and "unet.int8.bin" in model_part
    assert "weights/" not in space_part and "unet.safetensors" not in space_part
    assert "SEG_WEIGHTS_REVISION=<the commit of the weights upload>" in out and "sdk gradio 6.31.0" in out


def test_deploy_with_a_weights_repo_pins_the_space_to_its_commit(checkout, hub, capsys):
    assert main(["deploy-space", SPACE, "--sdk", "gradio", "--weights-repo", MODEL, "--private"]) == 0
    order = [name for name, _, _ in hub.calls]
    assert order == ["create_repo", "upload_folder", "create_repo", "get_space_variables"] + [
        "add_space_variable"] * 4 + ["upload_folder"]

    (model_args, model_kw), (space_args, space_kw) = called(hub, "create_repo")
    assert model_args == (MODEL,) and model_kw == {"repo_type": "model", "private": True, "exist_ok": True}
    assert space_args == (SPACE,) and space_kw == {"repo_type": "space", "space_sdk": "gradio", "private": True,
                                                   "exist_ok": True}
    weights_up, space_up = (kw for _, kw in called(hub, "upload_folder"))
    assert weights_up["repo_id"] == MODEL and weights_up["repo_type"] == "model"
    assert Path(weights_up["folder_path"]) == checkout / "weights"
    assert weights_up["sent"] == {rel.removeprefix("weights/"): text for rel, text in WEIGHTS.items()}

    commit = "a" * 40
    assert [args for args, _ in called(hub, "add_space_variable")] == [
        (SPACE, "SEG_PUBLIC", "1"), (SPACE, "MALLOC_ARENA_MAX", "2"), (SPACE, "SEG_WEIGHTS_REPO", MODEL),
        (SPACE, "SEG_WEIGHTS_REVISION", commit)]
    assert called(hub, "delete_space_variable") == []  # both are set anew, OTHER is the owner's

    assert space_up["repo_id"] == SPACE and space_up["repo_type"] == "space"
    sent = space_up["sent"]
    assert set(sent) == {*SENT, "README.md", "requirements.txt"}  # no weights: they live in the model repo
    assert all(sent[rel] == text for rel, text in SENT.items())  # the files themselves, not stand-ins
    meta = front_matter(sent["README.md"])
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == "6.31.0" and meta["app_file"] == "gradio_app.py"
    assert meta["python_version"] == "3.11" and meta["models"] == [MODEL] and meta["license"] == "other"
    assert "non-commercial" in sent["README.md"] and "KITTI" in sent["README.md"]
    reqs = sent["requirements.txt"].splitlines()
    assert reqs[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"
    assert "torch==2.14.1+cpu" in reqs and "torchvision==0.29.1+cpu" in reqs and "gradio==6.31.0" in reqs
    assert not any(line.startswith(("pytest", "hypothesis")) for line in reqs)
    assert f"at commit {commit}" in capsys.readouterr().out


def test_deploy_without_weights_repo_uploads_them_with_the_space(checkout, hub):
    assert main(["deploy-space", SPACE]) == 0
    assert len(called(hub, "upload_folder")) == 1
    [(_, kw)] = called(hub, "upload_folder")
    assert set(kw["sent"]) == {*SENT, *WEIGHTS, "README.md", "requirements.txt"}
    assert not set(kw["sent"]) & set(NEVER)
    meta = front_matter(kw["sent"]["README.md"])
    assert meta["sdk"] == "streamlit" and meta["sdk_version"] == "1.67.0" and meta["app_file"] == "app.py"
    assert "models" not in meta
    # A Space redeployed without --weights-repo must not keep downloading the old pin.
    assert sorted(args[1] for args, _ in called(hub, "delete_space_variable")) == ["SEG_WEIGHTS_REPO",
                                                                                    "SEG_WEIGHTS_REVISION"]
    assert [args for args, _ in called(hub, "add_space_variable")] == [(SPACE, "SEG_PUBLIC", "1"),
                                                                        (SPACE, "MALLOC_ARENA_MAX", "2")]


def test_patterns_select_this_checkout_without_data_tests_or_caches():
    """The real repository: code and weights go, nothing from tests/, benchmarks/, docs/ or caches."""
    plan = space.plan_space(SPACE)
    files = set(plan.space.files)
    assert {"app.py", "gradio_app.py", "gradio_tabs/photo.py", "seg_core/space.py", "seg_core/serve/photos.py", "ui/common.py", "app_pages/compare.py",
            ".streamlit/config.toml", "README.md", "requirements.txt", "weights/unet.safetensors",
            "examples/ATTRIBUTION.md", "examples/manifest.json", "examples/kitti_000000_10.png"} <= files
    assert not [f for f in files if f.startswith(("tests/", "benchmarks/", "docs/", "runs/", "packs/", ".venv/"))
                or "__pycache__" in f or f.endswith((".pyc", ".npz", ".tmp"))]
    assert all(plan.space.files[f] == (settings.ROOT / f).stat().st_size for f in files - set(plan.space.generated))


@pytest.mark.parametrize("argv, message", [
    (["deploy-space", "no-slash", "--dry-run"], "must be ORG/NAME"),
    (["deploy-space", SPACE, "--weights-repo", "bad id/x", "--dry-run"], "--weights-repo must be ORG/NAME"),
])
def test_bad_ids_are_one_line(checkout, hub, argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and hub.calls == []


def test_no_weights_is_one_line(checkout, hub, capsys):
    for rel in WEIGHTS:
        (checkout / rel).unlink()
    assert main(["deploy-space", SPACE, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "there are no weights to deploy" in err and err.count("\n") == 1


def test_a_refusal_of_the_hub_is_one_line(checkout, hub, monkeypatch, capsys):
    def refuse(self, *args, **kwargs):
        raise HfHubHTTPError("401 Client Error: Unauthorized\nInvalid credentials", response=_response(401))

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refuse)
    assert main(["deploy-space", SPACE]) == 2
    err = capsys.readouterr().err
    assert err == f"error: could not create the Space {SPACE}: HfHubHTTPError: 401 Client Error: Unauthorized\n"


# ------------------------------------------------------------------------------ weights at start-up

def _response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/models/x/y"))


@pytest.fixture
def downloads(monkeypatch, tmp_path):
    """``snapshot_download`` replaced: records its arguments, returns ``downloads.folder`` or raises
    ``downloads.error``."""
    served_weights._download.cache_clear()
    for name in ("SEG_WEIGHTS_REPO", "SEG_WEIGHTS_REVISION", "SEG_WEIGHTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "snapshot"
    folder.mkdir()
    (folder / "unet.safetensors").write_bytes(b"x")

    def snapshot_download(repo_id, **kwargs):
        downloads.calls.append((repo_id, kwargs))
        if downloads.error is not None:
            raise downloads.error
        return str(downloads.folder)

    downloads.calls, downloads.error, downloads.folder = [], None, folder
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    yield downloads
    served_weights._download.cache_clear()


def test_weights_come_from_the_local_folder_when_no_repo_is_set(downloads, monkeypatch, tmp_path):
    assert served_weights.weights_dir() == settings.DEFAULT_WEIGHTS_DIR
    monkeypatch.setenv("SEG_WEIGHTS_DIR", str(tmp_path))
    assert served_weights.weights_dir() == tmp_path
    monkeypatch.setenv("SEG_WEIGHTS_DIR", "  ")  # blank counts as unset
    monkeypatch.setenv("SEG_WEIGHTS_REPO", "")
    assert served_weights.weights_dir() == settings.DEFAULT_WEIGHTS_DIR
    assert downloads.calls == []


def test_weights_repo_is_downloaded_at_the_pinned_commit(downloads, monkeypatch):
    monkeypatch.setenv("SEG_WEIGHTS_REPO", MODEL)
    monkeypatch.setenv("SEG_WEIGHTS_REVISION", "c" * 40)
    source = served_weights.weights_source()
    assert source.folder == downloads.folder and source.label == f"hf://{MODEL}@{'c' * 40}" and source.note is None
    assert downloads.calls == [(MODEL, {"revision": "c" * 40, "allow_patterns": served_weights.STARTUP_ALLOW})]
    assert served_weights.weights_dir() == downloads.folder and len(downloads.calls) == 1  # once per process and pin
    # The patterns fetch the checkpoints and their int8 files, not logs.
    chosen = list(filter_repo_objects([*(w.removeprefix("weights/") for w in WEIGHTS)],
                                      allow_patterns=served_weights.STARTUP_ALLOW))
    assert sorted(chosen) == ["README.md", "unet.int8.bin", "unet.int8.xml", "unet.safetensors"]


@pytest.mark.parametrize("error, message", [
    (RepositoryNotFoundError("404 Repository Not Found", response=_response(404)),
     f"the weights repo {MODEL} (SEG_WEIGHTS_REPO) does not exist on the Hugging Face Hub, or is private"),
    (RevisionNotFoundError("404 Revision Not Found", response=_response(404)),
     f"the weights repo {MODEL} (SEG_WEIGHTS_REPO) has no revision 'v9' (SEG_WEIGHTS_REVISION)"),
    (RemoteEntryNotFoundError("404 Entry Not Found: unet.int8.bin", response=_response(404)),
     "a file of the weights repo cityscapes-lab/seg-weights (SEG_WEIGHTS_REPO) at v9 is missing: 404 Entry"),
    (HfHubHTTPError("500 Server Error\ntrace", response=_response(500)),
     "the Hugging Face Hub refused to send the weights repo cityscapes-lab/seg-weights (SEG_WEIGHTS_REPO): 500 Server Error"),
    (HFValidationError("bad id"), "is not a Hub repo id like org/name"),
])
def test_missing_repo_revision_or_file_is_one_sentence(downloads, monkeypatch, error, message):
    monkeypatch.setenv("SEG_WEIGHTS_REPO", MODEL)
    monkeypatch.setenv("SEG_WEIGHTS_REVISION", "v9")
    downloads.error = error
    with pytest.raises(served_weights.WeightsError) as info:
        served_weights.weights_dir()
    assert str(info.value).startswith(message) or message in str(info.value)
    assert "\n" not in str(info.value)


def test_offline_without_a_cached_copy_falls_back_to_the_local_weights(downloads, monkeypatch, tmp_path):
    monkeypatch.setenv("SEG_WEIGHTS_REPO", MODEL)
    monkeypatch.setenv("SEG_WEIGHTS_DIR", str(tmp_path))
    downloads.error = LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder\nmore")
    source = served_weights.weights_source()
    assert source.folder == tmp_path
    assert source.note.startswith(f"hf://{MODEL} is not reachable and not in the cache")


def test_a_repo_without_checkpoints_is_refused(downloads, monkeypatch):
    monkeypatch.setenv("SEG_WEIGHTS_REPO", MODEL)
    (downloads.folder / "unet.safetensors").unlink()
    with pytest.raises(served_weights.WeightsError, match="holds none of unet.safetensors"):
        served_weights.weights_dir()


def test_a_revision_without_a_repo_is_refused(downloads, monkeypatch):
    monkeypatch.setenv("SEG_WEIGHTS_REVISION", "abc")
    with pytest.raises(served_weights.WeightsError, match="SEG_WEIGHTS_REVISION is set but SEG_WEIGHTS_REPO is not"):
        served_weights.weights_dir()


# ---------------------------------------------------------------------------------------- settings

@pytest.mark.parametrize("env, public", [
    ({}, False), ({"SPACE_ID": "org/demo"}, True), ({"SPACE_ID": "org/demo", "SEG_PUBLIC": "0"}, False),
    ({"SEG_PUBLIC": "yes"}, True), ({"SEG_PUBLIC": ""}, False), ({"SPACE_ID": " ", "SEG_PUBLIC": " "}, False),
])
def test_public_mode(monkeypatch, env, public):
    for name in ("SPACE_ID", "SEG_PUBLIC"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert settings.public_mode() is public


def test_bad_setting_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("SEG_PUBLIC", "maybe")
    with pytest.raises(settings.SettingsError, match="SEG_PUBLIC='maybe' is not a yes/no value"):
        settings.public_mode()
    monkeypatch.setenv("SEG_BACKEND", "tensorrt")
    with pytest.raises(settings.SettingsError, match="SEG_BACKEND='tensorrt' is not one of auto, pytorch"):
        settings.backend()
    monkeypatch.setenv("SEG_BACKEND", "")
    assert settings.backend() == "auto"
    monkeypatch.setenv("SEG_INFER_WORKERS", "0")
    with pytest.raises(settings.SettingsError, match="SEG_INFER_WORKERS='0' is not a whole number of at least 1"):
        settings.infer_workers()
    monkeypatch.setenv("SEG_INFER_WORKERS", "2")
    monkeypatch.delenv("SEG_INFER_THREADS", raising=False)
    assert settings.infer_workers() == 2 and settings.infer_threads() is None
