import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gitaug import ClassThresholdSampler, GITAugment
from gitaug.hub import CONFIG_NAME, WEIGHTS_NAME, save_generator

from helpers import tiny_generator
from hub_server import HubServer

TESTS = Path(__file__).parent


@pytest.fixture
def saved(tmp_path) -> Path:
    folder = tmp_path / "gen"
    aug = GITAugment(tiny_generator())
    aug.metadata = {"dataset": "unit-test", "steps": 3}
    aug.save_pretrained(folder)
    return folder


def seeded_output(aug: GITAugment) -> torch.Tensor:
    torch.manual_seed(123)
    images = torch.rand(6, 1, 16, 16)
    return aug(images, generator=torch.Generator().manual_seed(5))


def test_save_writes_config_weights_and_card(saved):
    assert sorted(p.name for p in saved.iterdir()) == ["README.md", CONFIG_NAME, WEIGHTS_NAME]
    config = json.loads((saved / CONFIG_NAME).read_text())
    assert config["format_version"] == 1
    assert config["architecture"] == "MUNITGenerator"
    assert config["generator"]["in_channels"] == 1 and config["generator"]["image_size"] == 16
    assert config["training"] == {"dataset": "unit-test", "steps": 3}
    assert "library_name: gitaug" in (saved / "README.md").read_text()
    assert not list(saved.glob("*.tmp"))  # atomic writes leave nothing behind
    # as readable as any file the user writes (a temporary file starts out 0600)
    umask = os.umask(0)
    os.umask(umask)
    for path in saved.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path.name


def test_round_trip_gives_identical_outputs(saved):
    original = GITAugment(tiny_generator())
    loaded = GITAugment.from_pretrained(saved, sampler=ClassThresholdSampler([5, 50], threshold=10))
    assert torch.equal(seeded_output(original), seeded_output(loaded))
    assert loaded.metadata == {"dataset": "unit-test", "steps": 3}
    assert loaded.sampler.probabilities.tolist() == [0.5, 0.0]
    assert not loaded.generator.training


def test_samples_image_is_copied_and_shown_in_the_card(tmp_path):
    png = tmp_path / "grid.png"
    png.write_bytes(b"\x89PNG fake")
    save_generator(tiny_generator(), tmp_path / "out", samples_image=png)
    assert (tmp_path / "out" / "samples.png").read_bytes() == b"\x89PNG fake"
    assert "![samples](samples.png)" in (tmp_path / "out" / "README.md").read_text()


def test_missing_folder_and_not_a_generator_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no generator folder at './nowhere'"):
        GITAugment.from_pretrained("./nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        GITAugment.from_pretrained(tmp_path / "empty")


def test_unknown_format_version(saved):
    config = json.loads((saved / CONFIG_NAME).read_text())
    config["format_version"] = 99
    (saved / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unsupported format_version 99"):
        GITAugment.from_pretrained(saved)


def test_invalid_config_json(saved):
    (saved / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        GITAugment.from_pretrained(saved)


def test_invalid_architecture_in_config(saved):
    config = json.loads((saved / CONFIG_NAME).read_text())
    config["generator"]["in_channels"] = 4
    (saved / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="invalid generator architecture: in_channels must be 1 or 3, got 4"):
        GITAugment.from_pretrained(saved)


def test_truncated_weights_are_rejected(saved):
    data = (saved / WEIGHTS_NAME).read_bytes()
    (saved / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors is corrupt or truncated"):
        GITAugment.from_pretrained(saved)


def test_garbage_weights_are_rejected(saved):
    (saved / WEIGHTS_NAME).write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        GITAugment.from_pretrained(saved)


def test_weights_that_do_not_fit_the_config_name_the_tensor(saved):
    state = load_file(saved / WEIGHTS_NAME)
    name = "mlp.model.0.weight"
    state[name] = torch.zeros(3, 3)
    save_file(state, saved / WEIGHTS_NAME)
    with pytest.raises(ValueError, match=f"tensor '{name}' has shape \\(3, 3\\)"):
        GITAugment.from_pretrained(saved)
    del state[name]
    save_file(state, saved / WEIGHTS_NAME)
    with pytest.raises(ValueError, match=f"tensor '{name}' is missing"):
        GITAugment.from_pretrained(saved)


def test_non_finite_weights_are_rejected(saved):
    state = load_file(saved / WEIGHTS_NAME)
    state["mlp.model.0.bias"][0] = float("nan")
    save_file(state, saved / WEIGHTS_NAME)
    with pytest.raises(ValueError, match="'mlp.model.0.bias' holds non-finite values"):
        GITAugment.from_pretrained(saved)


# ----------------------------------------------------------------------------------- the Hub path

# huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when it is imported, so each Hub scenario
# runs in a fresh interpreter with those variables set, exactly as a user's process would. Loads that
# share the variables share an interpreter (one line of output each): importing torch is what costs.
HUB_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    from gitaug import GITAugment
    for repo, kwargs in json.loads(sys.argv[1]):
        out = {}
        try:
            aug = GITAugment.from_pretrained(repo, **kwargs)
            torch.manual_seed(123)
            images = torch.rand(6, 1, 16, 16)
            result = aug(images, generator=torch.Generator().manual_seed(5))
            out["output"] = result.flatten().tolist()
            out["metadata"] = aug.metadata
        except Exception as err:
            out["error"] = f"{type(err).__name__}: {err}"
        print(json.dumps(out), flush=True)
    """
)


def load_in_subprocess(repo: str, env: dict[str, str], **kwargs) -> dict:
    """One ``from_pretrained(repo, **kwargs)`` in a fresh interpreter with ``env``: its output or its error."""
    (result,) = loads_in_subprocess([(repo, kwargs)], env)
    return result


def loads_in_subprocess(calls: list[tuple[str, dict]], env: dict[str, str]) -> list[dict]:
    """Several ``from_pretrained`` calls, in order, in one fresh interpreter with ``env``."""
    # The same thread count as this process: the outputs are compared bit for bit with ones computed here,
    # and a convolution's float sums depend on how many threads share them.
    full_env = {**os.environ, **env, "OMP_NUM_THREADS": str(torch.get_num_threads()),
                "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", HUB_SCRIPT, json.dumps(calls)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.strip().splitlines() if line.startswith("{")]
    assert len(results) == len(calls), done.stdout
    return results


def test_from_pretrained_through_the_hub_then_offline_from_the_cache(saved, tmp_path):
    expected = seeded_output(GITAugment(tiny_generator())).flatten()
    cache = {"HF_HOME": str(tmp_path / "hf-home")}
    with HubServer({"gitaug-test/digits-gen": saved}) as server:
        online = {**cache, "HF_ENDPOINT": server.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1"}
        result = load_in_subprocess("gitaug-test/digits-gen", online)
        assert "error" not in result, result
        assert torch.equal(torch.tensor(result["output"]), expected)
        assert result["metadata"] == {"dataset": "unit-test", "steps": 3}
        fetched = {path.rsplit("/", 1)[-1] for method, path in server.requests if method == "GET"}
        assert fetched == {CONFIG_NAME, WEIGHTS_NAME}

        # Pinned revision: the commit the server reports; a repo that is not there; a revision that is not there.
        commit = server.commits["gitaug-test/digits-gen"]
        pinned, missing, bad_revision = loads_in_subprocess(
            [("gitaug-test/digits-gen", {"revision": commit}), ("gitaug-test/nothing-here", {}),
             ("gitaug-test/digits-gen", {"revision": "v9"})], online)
        assert torch.equal(torch.tensor(pinned["output"]), expected)
        assert missing["error"] == (
            "FileNotFoundError: there is no local folder 'gitaug-test/nothing-here', and "
            "Hub repo 'gitaug-test/nothing-here' was not found "
            "(or is private and no token was given)"
        )
        assert bad_revision["error"].startswith("FileNotFoundError: revision 'v9' of Hub repo")

        before = len(server.requests)
        offline = {**cache, "HF_ENDPOINT": server.endpoint, "HF_HUB_OFFLINE": "1"}
        result, uncached = loads_in_subprocess([("gitaug-test/digits-gen", {}), ("gitaug-test/other", {})], offline)
        assert "error" not in result, result
        assert torch.equal(torch.tensor(result["output"]), expected)
        assert len(server.requests) == before  # offline means no request at all
        assert uncached["error"].startswith(
            "FileNotFoundError: there is no local folder 'gitaug-test/other', and 'config.json' of Hub repo "
            "'gitaug-test/other' is not in the local cache"
        )


def test_a_hub_repo_without_weights_is_a_clear_error(saved, tmp_path):
    (saved / WEIGHTS_NAME).unlink()
    with HubServer({"gitaug-test/no-weights": saved}) as server:
        env = {"HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": server.endpoint}
        result = load_in_subprocess("gitaug-test/no-weights", env)
    assert result["error"] == (
        "FileNotFoundError: Hub repo 'gitaug-test/no-weights' has no file 'model.safetensors': "
        "it is not a gitaug generator"
    )


def test_push_to_hub_uploads_a_complete_folder(monkeypatch):
    """The upload itself is huggingface_hub's; this checks what gitaug hands it."""
    import huggingface_hub

    calls = {}

    class RecordingApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private=None, exist_ok=False, **kwargs):
            calls["create"] = (repo_id, private, exist_ok)
            return type("RepoUrl", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, commit_message, revision=None, **kwargs):
            folder = Path(folder_path)
            calls["files"] = sorted(p.name for p in folder.iterdir())
            calls["config"] = json.loads((folder / CONFIG_NAME).read_text())
            calls["card"] = (folder / "README.md").read_text()
            calls["upload"] = (repo_id, revision, commit_message)
            return "https://hub.example/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", RecordingApi)
    aug = GITAugment(tiny_generator())
    aug.metadata = {"steps": 1}
    url = aug.push_to_hub("me/my-gen", token="t0k", private=True)
    assert url == "https://hub.example/commit/abc"
    assert calls["token"] == "t0k"
    assert calls["create"] == ("me/my-gen", True, True)
    assert calls["files"] == ["README.md", CONFIG_NAME, WEIGHTS_NAME]
    assert calls["config"]["training"] == {"steps": 1}
    assert calls["upload"] == ("me/my-gen", None, "Upload gitaug generator")
    assert 'GITAugment.from_pretrained("me/my-gen"' in calls["card"]  # the usage line names the repo
