"""The Hub round trip a new user follows: push a trained model, pull it by name, serve it.

The Hub is replaced at its public boundary: ``HfApi.create_repo`` / ``upload_folder`` store each
upload as a commit of a local "remote" (``upload_folder`` returns its ``CommitInfo``), and
``huggingface_hub.snapshot_download`` hands back the files of a commit that its ``allow_patterns``
select, or raises the library's ``RepositoryNotFoundError`` / ``RevisionNotFoundError``. Nothing
here touches the network or the library's private cache layout.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
import torch
from huggingface_hub import CommitInfo
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import filter_repo_objects

from seg_core.checkpoint import HUB_WEIGHTS, CheckpointError, load_model, push_to_hub, save_model
from seg_core.config import ModelConfig
from seg_core.inference import predict
from seg_core.models import build_model
from seg_core.predictor import Predictor
from seg_core.runners import TorchRunner

REPO = "cityscapes-lab/unet-demo"


@pytest.fixture
def trained():
    """A model that looks trained: BatchNorm statistics set, metrics in its config.

    ``write_hub_folder`` stores fp16 weights, so the weights are first rounded to values fp16
    holds exactly; the pulled model must then give the very same outputs.
    """
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="unet", input_size=(64, 64), training={"epochs": 2},
                                    metrics={"val_miou": 0.31}))
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    return model.eval()


def _not_found(kind, message: str):
    request = httpx2.Request("GET", "https://huggingface.co/api/models/x")
    return kind(message, response=httpx2.Response(404, request=request))


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A local Hub: ``hub.commits[repo_id]`` lists the commits pushed, ``hub.downloads`` the
    ``snapshot_download`` calls, ``hub.latest(repo_id)`` the folder of the newest commit."""
    remote, downloads = tmp_path / "remote", tmp_path / "downloads"
    commits: dict[str, list[str]] = {}

    def create_repo(self, repo_id, *, private=False, exist_ok=False, **kwargs):
        if repo_id in commits and not exist_ok:
            raise AssertionError("create_repo of an existing repo without exist_ok")
        commits.setdefault(repo_id, [])
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        assert repo_id in commits, "upload_folder before create_repo"
        files = sorted(p for p in Path(folder_path).rglob("*") if p.is_file())
        oid = hashlib.sha1(b"".join(p.read_bytes() for p in files)).hexdigest()
        shutil.copytree(folder_path, remote / repo_id / oid, dirs_exist_ok=True)
        commits[repo_id].append(oid)
        return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/{oid}", commit_message="upload",
                          commit_description="", oid=oid)

    def snapshot_download(repo_id, *, revision=None, allow_patterns=None, **kwargs):
        hub.downloads.append((repo_id, revision, allow_patterns))
        if not commits.get(repo_id):
            raise _not_found(RepositoryNotFoundError, f"404 Client Error. Repository Not Found for {repo_id}")
        oid = commits[repo_id][-1] if revision in (None, "main") else revision
        if oid not in commits[repo_id]:
            raise _not_found(RevisionNotFoundError, f"404 Client Error. Revision Not Found for {revision}")
        src, out = remote / repo_id / oid, downloads / repo_id / oid
        names = [p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()]
        for name in filter_repo_objects(names, allow_patterns=allow_patterns):
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / name, out / name)
        return str(out)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    hub.commits, hub.downloads = commits, []
    hub.latest = lambda repo_id: remote / repo_id / commits[repo_id][-1]
    return hub


def test_push_pull_serve(trained, hub, tmp_path):
    url = push_to_hub(trained, REPO, card="# U-Net demo\n\nTrained on Cityscapes pairs.\n")
    assert url == f"https://huggingface.co/{REPO}"
    pushed = hub.latest(REPO)
    assert sorted(p.name for p in pushed.iterdir()) == ["README.md", "config.json", HUB_WEIGHTS]
    assert (pushed / "README.md").read_text().startswith("# U-Net demo")

    pulled = load_model(f"hf://{REPO}", arch="unet")
    assert hub.downloads[-1][:2] == (REPO, None) and HUB_WEIGHTS in hub.downloads[-1][2]
    assert pulled.config.metrics == {"val_miou": 0.31} and pulled.config.input_size == (64, 64)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(pulled(x), trained(x))
    commit = hub.commits[REPO][-1]
    pinned = load_model(f"hf://{REPO}@{commit}")
    assert hub.downloads[-1][:2] == (REPO, commit)
    with torch.no_grad():
        assert torch.equal(pinned(x), trained(x))

    # Serving it: a pulled model saved as weights/unet.safetensors is what the apps load.
    weights = tmp_path / "weights"
    save_model(pulled, weights / "unet.safetensors", half=True)
    served = Predictor.from_dir(weights)
    assert list(served.models) == ["unet"] and set(served.missing) == {"fcn_vgg16", "fcn_resnet50"}
    photo = torch.rand(40, 72, 3).mul(255).to(torch.uint8).numpy()
    assert (served.predict(photo)["unet"].mask == predict(TorchRunner(trained), photo)).all()


def test_pull_of_unknown_repo_or_revision_is_a_clear_error(trained, hub):
    push_to_hub(trained, REPO)
    with pytest.raises(CheckpointError, match="could not download hf://cityscapes-lab/other.*Repository Not Found"):
        load_model("hf://cityscapes-lab/other")
    with pytest.raises(CheckpointError, match=f"could not download hf://{REPO}@v2.*Revision Not Found"):
        load_model(f"hf://{REPO}@v2")


def test_pushed_repo_does_not_depend_on_the_local_checkout(trained, hub, tmp_path):
    """The Hub folder alone rebuilds the model: load it from a plain copy, no seg_core paths involved."""
    push_to_hub(trained, REPO)
    copy = shutil.copytree(hub.latest(REPO), tmp_path / "elsewhere")
    loaded = load_model(Path(copy))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x))


def test_an_app_serves_the_weights_folder_at_its_pinned_commit(trained, hub, tmp_path, monkeypatch):
    """deploy-space's weights flow: a weights folder pushed to one model repo, the app pinned to
    that commit through SEG_WEIGHTS_REPO / SEG_WEIGHTS_REVISION; a later push does not move it."""
    from seg_core import served_weights, space

    weights = tmp_path / "weights"
    save_model(trained, weights / "unet.safetensors", half=True)
    (weights / "unet_train_log.csv").write_text("epoch,miou\n")
    plan = space.plan_space("lab/demo", weights_repo=REPO, root=_checkout(tmp_path, weights))
    monkeypatch.setattr(huggingface_hub.HfApi, "get_space_variables", lambda self, repo_id: {})
    monkeypatch.setattr(huggingface_hub.HfApi, "add_space_variable", lambda self, repo_id, key, value: None)
    done = space.deploy_space(plan, log=lambda line: None)
    first = done["weights_commit"]
    assert first == hub.commits[REPO][0] and plan.variables["SEG_WEIGHTS_REVISION"] == first

    save_model(build_model(ModelConfig(arch="unet", input_size=(64, 64))), weights / "unet.safetensors", half=True)
    space.deploy_space(space.plan_space("lab/demo", weights_repo=REPO, root=tmp_path / "checkout"), log=lambda s: None)
    assert len(hub.commits[REPO]) == 2

    served_weights._download.cache_clear()
    monkeypatch.setenv("SEG_WEIGHTS_REPO", REPO)
    monkeypatch.setenv("SEG_WEIGHTS_REVISION", first)
    folder = served_weights.weights_dir()
    assert hub.downloads[-1] == (REPO, first, served_weights.STARTUP_ALLOW)
    assert not (folder / "unet_train_log.csv").exists()  # the app fetches what it serves, not the logs
    served = Predictor.from_dir(folder)
    photo = torch.rand(40, 72, 3).mul(255).to(torch.uint8).numpy()
    assert (served.predict(photo)["unet"].mask == predict(TorchRunner(trained), photo)).all()
    served_weights._download.cache_clear()


def _checkout(tmp_path: Path, weights: Path) -> Path:
    """The smallest repository deploy-space accepts: an entry point, requirements, a weights folder."""
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "app.py").write_text("import streamlit\n")
    (root / "requirements.txt").write_text("torch==2.14.1\nstreamlit==1.67.0\n")
    (root / "weights").symlink_to(weights, target_is_directory=True)
    return root
