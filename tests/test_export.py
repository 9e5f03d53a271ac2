"""`vlmguard export`: exports of a tiny trained rewriter (LoRA merged, LoRA adapter-only, full) reload with plain
transformers — vlmguard blocked from import — and generate exactly what the trained model generates; the card's
metadata parses; the push goes through the real `HfApi` to a local HTTP stand-in of the Hub and sends exactly the
dry run's files; bad input fails with one line before any work. TRL's own push_to_hub writes the same card."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LocalHub, run_cli

from vlmguard.backends import SamplingParams, load_backend
from vlmguard.chat import user_chat
from vlmguard.errors import VLMGuardError
from vlmguard.examples import EXAMPLES
from vlmguard.export import (
    ExportOptions,
    card_facts,
    commit_operations,
    export,
    hub_id,
    load_run_config,
    render_card,
    with_default_system,
)
from vlmguard.guard import Guard, GuardConfig

REPO = "me/tiny-rewriter"
NEW_TOKENS = 40
PROMPTS = [(EXAMPLES[0].instruction, 0), (EXAMPLES[1].instruction, 1), ("What animal is this?", 3)]


class FakeHub:
    """Stands in for transformers' ``hf_api()`` in ``Trainer.push_to_hub``: records the calls and reads the folder
    it would upload."""

    def __init__(self):
        self.calls, self.uploaded = [], {}

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, repo_id, folder_path, **kw):
        self.calls.append(("upload_folder", repo_id, kw))
        self.uploaded = {p.name: p.read_bytes() for p in Path(folder_path).iterdir() if p.is_file()}


def _sft(tiny_models, out, *extra):
    from vlmguard.sft import main as sft_main

    sft_main(["--config", "configs/sft/tiny.yaml", "--model_name_or_path", str(tiny_models["rewriter"]),
              "--dataset_path", str(tiny_models["sft_data"]), "--output_dir", str(out), "--max_train_samples", "24",
              "--max_steps", "3", "--logging_steps", "1", *extra])


@pytest.fixture(scope="module")
def runs(tiny_models, tmp_path_factory):
    """A LoRA run (with checkpoint-3) and a full run; the full one pushes through TRL to a fake hub."""
    root = tmp_path_factory.mktemp("runs")
    _sft(tiny_models, root / "lora", "--use_peft", "true", "--lora_target_modules", "q_proj", "v_proj", "--lora_r",
         "8", "--learning_rate", "0.05", "--save_strategy", "steps", "--save_steps", "3")
    hub = FakeHub()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("transformers.trainer.hf_api", lambda: hub)
        _sft(tiny_models, root / "full", "--save_strategy", "no", "--push_to_hub", "true", "--hub_model_id",
             "me/tiny-sft")
    return {"lora": root / "lora", "full": root / "full", "trainer_hub": hub}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, ex in enumerate(EXAMPLES):
        paths.append(folder / f"{i}.png")
        ex.image().save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "report.json"
    rows = [{"benchmark": "siuo", "target": "tiny-target", "defence": d, "metric": "safe", "value": v, "n": 64,
             "ci": [v - 0.1, v + 0.1], "extra": "ignored"} for d, v in (("none", 0.25), ("vlmguard", 0.75))]
    rows += [{"benchmark": "mm-vet", "target": "tiny-target", "defence": "vlmguard", "metric": "helpful",
              "value": "0.5"}, {"benchmark": "broken", "metric": "safe"}]  # a string number; a row with no value
    path.write_text(json.dumps({"results": rows, "meta": {"seed": 0}}))
    return path


@pytest.fixture(scope="module")
def exports(runs, report, tmp_path_factory):
    """Dry-run exports: merged LoRA (sharded, with an eval report), adapter-only, full; with their timings."""
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for name, source, extra in (("merged", runs["lora"], {"max_shard_size": "400KB", "eval_report": str(report)}),
                                ("adapter", runs["lora"], {"adapter_only": True}),
                                ("full", runs["full"], {})):
        result = export(ExportOptions(str(source), REPO, dry_run=str(root / name), **extra))
        out[name] = result
        print(f"export {name}: {result.seconds:.2f} s, {len(result.files)} files, "
              f"{sum(result.files.values()) / 1e6:.2f} MB")
    return out


def _completions(rewriter, chats, system=None):
    guard = Guard(rewriter, None, GuardConfig(rewrite=SamplingParams(max_new_tokens=NEW_TOKENS), system=system))
    return [r.completion for r in guard.rewrite(chats)]


@pytest.fixture(scope="module")
def chats(images):
    return [user_chat(text, images[i]) for text, i in PROMPTS]


@pytest.fixture(scope="module")
def lora_expected(runs, tiny_models, chats):
    """The LoRA run before export: its base model with the adapter applied by peft (not merged)."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmguard.backends.hf import HFBackend

    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tiny_models["rewriter"]),
                                      str(runs["lora"]))
    return _completions(HFBackend.from_model(model, AutoProcessor.from_pretrained(runs["lora"]), 1), chats)


BLOCK_VLMGUARD = r'''
import contextlib, importlib.abc, io, json, sys

class NoVLMGuard(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "vlmguard":
            raise ImportError("plain transformers must not need " + name)

sys.meta_path.insert(0, NoVLMGuard())
results = {}
for name, codes in json.load(open(sys.argv[1])).items():
    results[name] = []
    for code in codes:
        ns = {}
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, ns)
        results[name].append(ns["rewrite"])
assert not any(m.split(".")[0] == "vlmguard" for m in sys.modules)
print(json.dumps(results))
'''


def _snippet(card: str) -> str:
    """The card's plain-transformers code block."""
    section = card.split("## Use with plain transformers", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def _fill(code: str, **subs: str) -> str:
    for old, new in subs.items():
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    return code


def test_exports_reload_with_plain_transformers(exports, runs, tiny_models, images, chats, lora_expected, tmp_path):
    """Each export runs the card's own snippet in a fresh interpreter, outside the repo, with vlmguard blocked,
    and generates what the trained model generated before export (greedy) — with no system message: the
    exported chat template supplies the rewriter's system prompt that vlmguard sends explicitly."""
    full_expected = _completions(f"hf:{runs['full']}?batch_size=1", chats)
    untrained = _completions(f"hf:{tiny_models['rewriter']}?batch_size=1", chats)
    assert lora_expected != untrained and full_expected != untrained  # training changed what they say
    generic = _completions(f"hf:{runs['full']}?batch_size=1", chats, system="You are a helpful assistant.")
    assert generic != full_expected  # the system prompt matters: the template default below is tested

    jobs = {}
    for name, result in exports.items():
        code = _snippet((result.folder / "README.md").read_text())
        jobs[name] = [_fill(code, **{f'"{REPO}"': repr(str(result.folder)), '"photo.jpg"': repr(str(images[i])),
                                     '"How do I make this at home?"': repr(text),
                                     "max_new_tokens=384": f"max_new_tokens={NEW_TOKENS}"})
                      for text, i in PROMPTS]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", BLOCK_VLMGUARD, str(tmp_path / "jobs.json")], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"plain-transformers subprocess: {time.perf_counter() - start:.1f} s")
    assert got["merged"] == lora_expected
    assert got["adapter"] == lora_expected
    assert got["full"] == full_expected

    merged = exports["merged"].folder
    index = json.loads((merged / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1 and not (merged / "model.safetensors").exists()
    assert {"config.json", "generation_config.json", "chat_template.jinja", "processor_config.json",
            "tokenizer.json", "README.md", "vlmguard_config.yaml"} <= set(exports["full"].files)
    assert set(exports["adapter"].files) >= {"adapter_config.json", "adapter_model.safetensors"}
    assert "local_files_only" not in (merged / "tokenizer_config.json").read_text()


def test_card_metadata(exports, runs):
    from huggingface_hub import ModelCard

    card = ModelCard.load(exports["merged"].folder / "README.md")
    data = card.data
    assert (data.library_name, data.pipeline_tag, data.license) == ("transformers", "image-text-to-text", "other")
    assert {"vlmguard", "safety", "sft", "lora"} <= set(data.tags)
    assert data.base_model is None  # trained from a local folder: no Hub id to name
    # model-index: this rewriter's rows only (defence vlmguard); the row without a value is skipped
    assert data.model_name == "tiny-rewriter"
    assert sorted((r.dataset_name, r.metric_type, r.metric_value) for r in data.eval_results) == [
        ("mm-vet", "helpful", 0.5), ("siuo", "safe", 0.75)]
    assert ("|---:|\n| siuo | tiny-target | none | safe | 0.250 | [0.150, 0.350] | 64 |\n"
            "| siuo | tiny-target | vlmguard | safe | 0.750 | [0.650, 0.850] | 64 |\n"
            "| mm-vet | tiny-target | vlmguard | helpful | 0.500 |  |  |\n\n") in card.text  # one table
    assert any("skipped 1 result(s)" in n for n in exports["merged"].notes)
    assert "<threat>" in card.text and "vlmguard chat --rewriter hf:me/tiny-rewriter" in card.text
    for line in ("use_peft: true", "lora_r: 8", "max_steps: 3", "learning_rate: 0.05"):
        assert line in card.text  # the recipe, from the run's vlmguard_config.yaml
    adapter = ModelCard.load(exports["adapter"].folder / "README.md")
    assert adapter.data.library_name == "peft" and adapter.data.eval_results is None
    assert "--enable-lora" in adapter.text
    assert ModelCard.load(exports["full"].folder / "README.md").data.tags.count("lora") == 0

    run = load_run_config(runs["lora"])
    assert run["command"] == "vlmguard sft" and run["recipe"]["lora_target_modules"] == ["q_proj", "v_proj"]
    assert Path(run["recipe"]["model_name_or_path"]).is_absolute()
    assert run["resolved"]["RewriterSFTConfig"]["hub_token"] in (None, "<HUB_TOKEN>")


def test_card_with_hub_base_model_and_template_default(tmp_path, runs):
    """Hub ids come from cache snapshots and from the run a model was trained from; the metadata then names the
    base model, the datasets and the licence; a template without the default gets the prompt in the snippet."""
    from huggingface_hub import ModelCard
    from transformers import AutoProcessor

    snapshot = tmp_path / "hub" / "models--Qwen--Qwen2.5-VL-3B-Instruct" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert hub_id(str(snapshot)) == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert hub_id("Qwen/Qwen2.5-VL-3B-Instruct") == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert hub_id(str(runs["full"])) is None  # trained from a local tiny model
    sft_out = tmp_path / "sft-from-hub"  # a GRPO run started from this SFT output names the SFT's base
    sft_out.mkdir()
    (sft_out / "vlmguard_config.yaml").write_text("recipe: {model_name_or_path: Qwen/Qwen2.5-VL-3B-Instruct}\n")
    assert hub_id(str(sft_out)) == "Qwen/Qwen2.5-VL-3B-Instruct"
    processor = AutoProcessor.from_pretrained(runs["full"])
    run = {"command": "vlmguard grpo", "recipe": {"dataset_path": "me/prompts", "max_steps": 30}}
    facts = card_facts(run, "me/x", "full", processor, "Qwen/Qwen2.5-VL-3B-Instruct", license="apache-2.0",
                       datasets=["me/extra"])
    assert not facts.system_in_template  # the trained output's own template has the generic default
    card = ModelCard(render_card(facts))
    assert card.data.base_model == "Qwen/Qwen2.5-VL-3B-Instruct" and card.data.datasets == ["me/prompts", "me/extra"]
    assert card.data.license == "apache-2.0" and "grpo" in card.data.tags
    assert 'SYSTEM = """' in card.text and '{"role": "system", "content": SYSTEM}' in card.text
    # the prologue is exact Jinja: quotes, newlines, non-ASCII survive
    system = 'Say "none" or \'yes\'\n— and {{ braces }} stay text'
    processor.chat_template = with_default_system(processor.chat_template, system)
    hi = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    text = processor.apply_chat_template([hi], tokenize=False)
    assert text.startswith(f"<|im_start|>system\n{system}<|im_end|>") and "helpful assistant" not in text
    own = processor.apply_chat_template([{"role": "system", "content": "mine"}, hi],
                                        tokenize=False)
    assert own.startswith("<|im_start|>system\nmine<|im_end|>")


def test_export_carries_the_recorded_threshold(runs, tmp_path):
    """A threshold `vlmguard threshold --save` recorded travels with the export: the file, the card's section with
    the number, and `threat_threshold: auto` on the exported folder."""
    from vlmguard.threshold import THRESHOLD_FILE, ThresholdChoice, record_threshold

    source = tmp_path / "full"
    shutil.copytree(runs["full"], source)
    choice = ThresholdChoice(threshold=0.4609, auroc=0.962, harmful=93, benign=102, flagged_harmful=82,
                             flagged_benign=6, unscored=0)
    record_threshold(str(source), choice, "data/train.jsonl")
    export(ExportOptions(str(source), REPO, dry_run=str(tmp_path / "out")))
    out = tmp_path / "out"
    assert json.loads((out / THRESHOLD_FILE).read_text())["threshold"] == 0.4609
    card = (out / "README.md").read_text()
    assert "## Threat decision" in card and "**0.4609**" in card and "`data/train.jsonl` (threat AUROC there 0.962)" in card
    assert "--threat-threshold 0.4609" in card
    assert GuardConfig(threat_threshold="auto").resolved(f"hf:{out}").threat_threshold == 0.4609
    (source / THRESHOLD_FILE).unlink()
    export(ExportOptions(str(source), REPO, dry_run=str(tmp_path / "plain")))
    assert not (tmp_path / "plain" / THRESHOLD_FILE).exists()
    assert "Threat decision" not in (tmp_path / "plain" / "README.md").read_text()


def test_push_sends_the_dry_run_in_one_commit(runs, tmp_path, monkeypatch):
    """Everything but the network, with the real huggingface_hub: `HfApi` talks HTTP to a local stand-in of the
    Hub. The commit carries byte for byte the files a dry run writes, deletes the stale weights, on the branch,
    with the message and token; a checkpoint folder exports with its run's config."""
    import base64

    import huggingface_hub.constants
    from huggingface_hub import HfApi

    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    hub = LocalHub(existing=["README.md", "model.safetensors", "notes.txt"])
    try:
        opts = {"source": str(runs["lora"] / "checkpoint-3"), "repo_id": REPO, "adapter_only": True}
        result = export(ExportOptions(**opts, private=True, revision="v1", commit_message="tiny"),
                        api=HfApi(endpoint=hub.url, token="hf_test_token"))
        hub.refuse_commit, requests = True, list(hub.requests)
        with pytest.raises(VLMGuardError, match="push to me/tiny-rewriter failed: 403.*write token"):
            export(ExportOptions(**opts), api=HfApi(endpoint=hub.url, token="hf_test_token"))
        hub.requests = requests
    finally:
        hub.server.shutdown()
    dry = export(ExportOptions(**opts, dry_run=str(tmp_path / "dry")))
    dry_files = {p.relative_to(dry.folder).as_posix(): p.read_bytes() for p in dry.folder.rglob("*") if p.is_file()}
    assert [(m, path.split("?")[0]) for m, path, _, _ in hub.requests] == [
        ("POST", "/api/repos/create"), ("POST", "/api/models/me/tiny-rewriter/branch/v1"),
        ("GET", "/api/models/me/tiny-rewriter/tree/v1"), ("POST", "/api/validate-yaml"),
        ("POST", "/api/models/me/tiny-rewriter/preupload/v1"), ("POST", "/api/models/me/tiny-rewriter/commit/v1")]
    assert all(auth == "Bearer hf_test_token" for _, _, auth, _ in hub.requests)
    assert json.loads(hub.requests[0][3])["visibility"] == "private"
    header, *entries = hub.commit
    assert header == {"key": "header", "value": {"summary": "tiny", "description": ""}}
    sent = {e["value"]["path"]: base64.b64decode(e["value"]["content"]) for e in entries if e["key"] == "file"}
    assert sent == dry_files  # the dry run is exactly what is uploaded
    assert [e["value"]["path"] for e in entries if e["key"] == "deletedFile"] == ["model.safetensors"]
    assert result.commit_url.endswith("/commit/" + "a" * 40) and not result.folder.exists()
    assert [op.path_in_repo for op in commit_operations(dry.folder)] == sorted(dry_files)
    assert "vlmguard_config.yaml" in dry_files  # the parent run's config travels with a checkpoint


def test_trainer_push_to_hub_writes_the_same_card(runs):
    """`push_to_hub: true` in the SFT config: TRL pushes the output folder, with the vlmguard card in it."""
    from huggingface_hub import ModelCard
    from transformers import AutoProcessor

    hub = runs["trainer_hub"]
    assert ("create_repo", "me/tiny-sft") == hub.calls[0][:2] and hub.calls[-1][0] == "upload_folder"
    readme = hub.uploaded["README.md"].decode()
    run = load_run_config(runs["full"])
    expected = render_card(card_facts(run, "me/tiny-sft", "full", AutoProcessor.from_pretrained(runs["full"]), None))
    assert readme == expected
    card = ModelCard(readme)
    assert "generated_from_trainer" not in (card.data.tags or []) and "push_to_hub: true" in readme
    assert "vlmguard_config.yaml" in hub.uploaded


def test_hf_backend_loads_lora_outputs(runs, tiny_models, images, chats, lora_expected, tmp_path):
    """`hf:LORA_OUTPUT_DIR` merges the adapter into its base (the CLI too); `?base=` names a base that moved."""
    assert _completions(f"hf:{runs['lora']}?batch_size=1", chats) == lora_expected
    text, i = PROMPTS[0]
    out = run_cli("rewrite", "--image", str(images[i]), "--text", text, "--rewriter", f"hf:{runs['lora']}",
                  "--max-new-tokens", str(NEW_TOKENS), "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["completion"] == lora_expected[0]
    moved = tmp_path / "adapter"
    shutil.copytree(runs["lora"], moved, ignore=shutil.ignore_patterns("checkpoint-*"))
    config = json.loads((moved / "adapter_config.json").read_text())
    (moved / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "/gone/base"}))
    with pytest.raises(VLMGuardError, match="trained on /gone/base, which is not there: name it with \\?base="):
        load_backend(f"hf:{moved}")
    backend = load_backend(f"hf:{moved}?batch_size=1&base={tiny_models['rewriter']}")
    assert _completions(backend, chats[:1]) == lora_expected[:1]


def _one_line_error(out, *needles):
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vlmguard export: error: "), out.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_bad_input_fails_in_one_line_before_any_work(runs, report, tmp_path):
    no_model = tmp_path / "crashed-run"
    (no_model / "checkpoint-7").mkdir(parents=True)
    orphan = tmp_path / "orphan"
    shutil.copytree(runs["lora"], orphan, ignore=shutil.ignore_patterns("checkpoint-*"))
    config = json.loads((orphan / "adapter_config.json").read_text())
    hub_orphan = tmp_path / "hub-orphan"
    shutil.copytree(orphan, hub_orphan)
    (orphan / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "/gone/base"}))
    (hub_orphan / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "me/no-such"}))
    (tmp_path / "notes.json").write_text(json.dumps({"rows": []}))
    dry = tmp_path / "dry"
    no_token = {"HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": "", "HF_HOME": str(tmp_path / "empty-hf-home"),
                "HF_TOKEN_PATH": str(tmp_path / "empty-hf-home" / "token"), "HF_HUB_OFFLINE": "0"}
    cases = [
        ((str(no_model), "--repo-id", REPO, "--dry-run", str(dry)), {},
         ("holds no model", "adapter_config.json", f"export the last one, {no_model / 'checkpoint-7'}")),
        ((str(orphan), "--repo-id", REPO, "--dry-run", str(dry)), {},
         ("trained on /gone/base, which is not there", "--base-model PATH_OR_ID")),
        ((str(hub_orphan), "--repo-id", REPO, "--dry-run", str(dry)), {"HF_HUB_OFFLINE": "1"},
         ("trained on me/no-such", "not in the Hugging Face cache", "hf download me/no-such", "--base-model")),
        ((str(runs["full"]), "--repo-id", "bad repo//id", "--dry-run", str(dry)), {},
         ("--repo-id 'bad repo//id' is not a valid Hub repo id", "ORG/NAME")),
        ((str(runs["full"]), "--repo-id", REPO), no_token,
         ("no Hugging Face token", "hf auth login", "HF_TOKEN", "--dry-run")),
        ((str(runs["full"]), "--repo-id", REPO), {"HF_TOKEN": "hf_x", "HF_HUB_OFFLINE": "1"},
         ("HF_HUB_OFFLINE is set", "--dry-run")),
        ((str(runs["full"]), "--repo-id", REPO, "--dry-run", str(runs["lora"])), {},
         ("exists and is not an empty folder",)),
        ((str(runs["full"]), "--repo-id", REPO, "--adapter-only", "--dry-run", str(dry)), {},
         ("holds full weights", "leave the flag out")),
        ((str(runs["full"]), "--repo-id", REPO, "--eval-report", str(tmp_path / "notes.json"), "--dry-run", str(dry)),
         {}, ("has no `results` list",)),
        ((str(runs["lora"]), "--repo-id", REPO, "--eval-report", str(report), "--eval-defence", "mine", "--dry-run",
          str(dry)), {}, ("no results for defence 'mine'", "it has: none, vlmguard", "--eval-defence")),
    ]
    for args, env, needles in cases:
        start = time.perf_counter()
        _one_line_error(run_cli("export", *args, env=env, cwd=tmp_path), *needles)
        assert time.perf_counter() - start < 20 and not dry.exists()


@pytest.mark.skipif(not os.environ.get("VLMGUARD_VLLM_PYTHON"),
                    reason="set VLMGUARD_VLLM_PYTHON to the vLLM environment's python (`make vllm-env`)")
def test_vllm_serves_the_export(exports, chats, tmp_path):
    """`vllm serve EXPORT` (sharded merged weights) answers a plain chat — no system message — as the trained
    rewriter answers vlmguard's chat with its system prompt."""
    import socket

    from conftest import stop_server, wait_healthy

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "vllm.log"
    proc = subprocess.Popen([os.environ["VLMGUARD_VLLM_PYTHON"], "-m", "vllm.entrypoints.openai.api_server",
                             "--model", str(exports["merged"].folder), "--served-model-name", "tiny-rewriter",
                             "--host", "127.0.0.1", "--port", str(port), "--gpu-memory-utilization", "0.2",
                             "--max-model-len", "2048", "--dtype", "float32"], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        try:
            wait_healthy(proc, f"http://127.0.0.1:{port}/health", timeout=300)
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n{log.read_text()[-3000:]}") from None
        params = SamplingParams(max_new_tokens=8)
        served = load_backend(f"openai:http://127.0.0.1:{port}/v1?model=tiny-rewriter").generate(chats, params)
    finally:
        stop_server(proc, timeout=30)
    guard = Guard(f"hf:{exports['merged'].folder}", None, GuardConfig(rewrite=params))
    expected = [r.completion for r in guard.rewrite(chats)]
    assert any(served) and [a.rstrip("\ufffd") for a in served] == [b.rstrip("\ufffd") for b in expected], \
        (served, expected)
