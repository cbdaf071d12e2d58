"""The fake Hub is faithful enough: the real huggingface_hub client and transformers round-trip through it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from transformers import AutoModelForSeq2SeqLM, T5Config, T5ForConditionalGeneration

from tests.fake_hub import USER, FakeHub, git_blob_sha

REPO = f"{USER}/demo"
WEIGHTS = bytes(range(256)) * 3 + b"\x00\xff"  # binary, with NUL bytes


def write_folder(folder: Path, learning_rate: float = 0.1) -> Path:
    """A small folder to push: a binary file, a JSON file and a nested file."""
    (folder / "nested").mkdir(parents=True, exist_ok=True)
    (folder / "weights.bin").write_bytes(WEIGHTS)
    (folder / "config.json").write_text(json.dumps({"lr": learning_rate}))
    (folder / "nested" / "notes.txt").write_text("hello\n")
    return folder


def folder_bytes(folder: str | Path) -> dict[str, bytes]:
    root = Path(folder)
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


@pytest.fixture
def api(fake_hub: FakeHub) -> HfApi:
    api = HfApi()
    assert api.endpoint == fake_hub.url
    return api


def test_create_repo_then_exist_ok(fake_hub: FakeHub, api: HfApi) -> None:
    url = api.create_repo(REPO)
    assert url.repo_id == REPO and url.startswith(fake_hub.url)
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(REPO)
    assert conflict.value.response.status_code == 409
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO
    assert api.create_repo("no-namespace").repo_id == f"{USER}/no-namespace"  # the server fills in the user
    assert api.model_info(REPO).sha == fake_hub.commits(REPO)[0].sha
    assert fake_hub.files(REPO) == {}
    assert api.whoami()["name"] == USER


def test_upload_then_download_identical_bytes(fake_hub: FakeHub, api: HfApi, tmp_path: Path) -> None:
    api.create_repo(REPO)
    local = folder_bytes(write_folder(tmp_path / "src"))
    info = api.upload_folder(repo_id=REPO, folder_path=tmp_path / "src", commit_message="add files")
    assert info.oid == fake_hub.commits(REPO)[0].sha and fake_hub.commits(REPO)[0].message == "add files"
    assert fake_hub.files(REPO) == local

    assert Path(hf_hub_download(REPO, "weights.bin")).read_bytes() == WEIGHTS
    assert Path(hf_hub_download(REPO, "nested/notes.txt")).read_bytes() == b"hello\n"
    assert folder_bytes(snapshot_download(REPO)) == local
    assert sorted(api.list_repo_files(REPO)) == sorted(local)
    assert {entry.path for entry in api.list_repo_tree(REPO)} == {"config.json", "nested", "weights.bin"}
    weights, nested = api.get_paths_info(REPO, ["weights.bin", "nested", "missing.txt"])
    assert weights.blob_id == git_blob_sha(WEIGHTS) and weights.size == len(WEIGHTS) and nested.path == "nested"


def test_identical_push_is_a_no_op_and_one_change_is_one_commit(fake_hub: FakeHub, api: HfApi, tmp_path: Path) -> None:
    api.create_repo(REPO)
    folder = write_folder(tmp_path / "src")
    api.upload_folder(repo_id=REPO, folder_path=folder)
    assert len(fake_hub.commits(REPO)) == 2  # initial commit + upload

    api.upload_folder(repo_id=REPO, folder_path=folder)
    assert len(fake_hub.commits(REPO)) == 2

    write_folder(folder, learning_rate=0.2)  # rewrites every file, but only config.json changes
    before = fake_hub.files(REPO)
    api.upload_folder(repo_id=REPO, folder_path=folder)
    assert len(fake_hub.commits(REPO)) == 3
    after = fake_hub.files(REPO)
    assert {path for path in after if after[path] != before.get(path)} == {"config.json"}
    assert json.loads(Path(hf_hub_download(REPO, "config.json")).read_text()) == {"lr": 0.2}


@pytest.mark.parametrize("branch", ["dev", "1.5x", "feature/x"])
def test_branches_and_commit_shas(fake_hub: FakeHub, api: HfApi, tmp_path: Path, branch: str) -> None:
    api.create_repo(REPO)
    first = api.upload_folder(repo_id=REPO, folder_path=write_folder(tmp_path / "a")).oid
    api.create_branch(REPO, branch=branch)
    api.create_branch(REPO, branch=branch, exist_ok=True)
    api.upload_folder(repo_id=REPO, folder_path=write_folder(tmp_path / "b", 0.5), revision=branch)

    assert json.loads(Path(hf_hub_download(REPO, "config.json", revision=branch)).read_text()) == {"lr": 0.5}
    assert json.loads(Path(hf_hub_download(REPO, "config.json")).read_text()) == {"lr": 0.1}
    head = fake_hub.branches(REPO)[branch]
    assert Path(hf_hub_download(REPO, "config.json", revision=head)).read_bytes() == b'{"lr": 0.5}'
    assert folder_bytes(snapshot_download(REPO, revision=first))["config.json"] == b'{"lr": 0.1}'
    assert folder_bytes(snapshot_download(REPO, revision=branch))["config.json"] == b'{"lr": 0.5}'
    assert len(fake_hub.commits(REPO, branch)) == 3 and len(fake_hub.commits(REPO)) == 2
    assert {ref.name: ref.target_commit for ref in api.list_repo_refs(REPO).branches} == fake_hub.branches(REPO)

    api.create_branch(REPO, branch="old", revision=fake_hub.commits(REPO)[-1].sha)  # from the initial commit
    assert fake_hub.files(REPO, "old") == {}


def test_pull_request_refs(fake_hub: FakeHub, api: HfApi, tmp_path: Path) -> None:
    api.create_repo(REPO)
    info = api.upload_folder(repo_id=REPO, folder_path=write_folder(tmp_path / "src"), create_pr=True)
    assert info.pr_revision == "refs/pr/1"
    assert fake_hub.files(REPO) == {}
    assert Path(hf_hub_download(REPO, "weights.bin", revision="refs/pr/1")).read_bytes() == WEIGHTS

    operation = CommitOperationAdd(path_in_repo="extra.txt", path_or_fileobj=b"extra")
    info = api.create_commit(REPO, operations=[operation], commit_message="add extra", create_pr=True)
    assert info.pr_revision == "refs/pr/2"
    assert fake_hub.files(REPO, "refs/pr/2") == {"extra.txt": b"extra"}
    assert len(api.list_repo_refs(REPO, include_pull_requests=True).pull_requests) == 2


def test_missing_repo_revision_and_file(fake_hub: FakeHub, api: HfApi) -> None:
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(f"{USER}/missing", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(f"{USER}/missing")
    api.create_repo(REPO)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="nope")
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO, revision="nope")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "config.json")


def test_subprocess_env(fake_hub: FakeHub, api: HfApi, tmp_path: Path) -> None:
    """A child process is pointed at the fake by environment variables alone (read when it imports the client)."""
    api.create_repo(REPO)
    api.upload_folder(repo_id=REPO, folder_path=write_folder(tmp_path / "src"))
    code = f"from huggingface_hub import hf_hub_download; print(open(hf_hub_download({REPO!r}, 'config.json')).read())"
    env = {**os.environ, **fake_hub.env(tmp_path / "child_home")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"lr": 0.1}'


def test_transformers_push_to_hub_and_from_pretrained(fake_hub: FakeHub) -> None:
    torch.manual_seed(0)
    config = T5Config(vocab_size=64, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)
    model = T5ForConditionalGeneration(config).eval()
    repo_id = f"{USER}/tiny-t5"
    model.push_to_hub(repo_id)
    assert {"config.json", "model.safetensors", "README.md"} <= set(fake_hub.files(repo_id))

    loaded = AutoModelForSeq2SeqLM.from_pretrained(repo_id)
    expected = model.state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in loaded.state_dict().items())

    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    model.push_to_hub(repo_id, revision="1.5x")
    on_branch = AutoModelForSeq2SeqLM.from_pretrained(repo_id, revision="1.5x")
    assert torch.equal(on_branch.lm_head.weight, model.lm_head.weight)
    assert not torch.equal(AutoModelForSeq2SeqLM.from_pretrained(repo_id).lm_head.weight, model.lm_head.weight)
