"""The shipped real-size reward, GRPO and eval recipes BUILT and run for a step, not only parsed: every server
they name (``vllm serve`` of Qwen2.5-VL, Llama Guard, GPT-4o…) is replaced by the project's model server on
127.0.0.1 answering under the same model names — a tiny Qwen2.5-VL for the VLMs, the tiny text-only
Llama-Guard-format model for Llama Guard — so each judge gets exactly the input format the recipe sends."""
import asyncio
import re
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import start_server, stop_server
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "eval"))
SPEC = re.compile(r"openai:(https?://[^?\s\"']+)\?model=([^&\s\"']+)")
CONFIGS = sorted((ROOT / "configs").glob("*/*.yaml"))


def _names(guard: bool) -> list[str]:
    found = {m.group(2) for path in CONFIGS for m in SPEC.finditer(path.read_text())}
    return sorted(n for n in found if ("Guard" in n) == guard)


@pytest.fixture(scope="module")
def stand_ins(tiny_models, tiny_guard):
    vlm, vlm_url = start_server(["--model", f"hf:{tiny_models['target']}?batch_size=16", "--batch-wait-ms", "20",
                                 "--name", *_names(guard=False)])
    guard, guard_url = start_server(["--model", f"hf:{tiny_guard}", "--batch-wait-ms", "20",
                                     "--name", *_names(guard=True)])
    yield {"vlm": vlm_url, "guard": guard_url}
    stop_server(vlm)
    stop_server(guard)


def local(text: str, urls: dict[str, str]) -> str:
    """The recipe with each server URL pointed at its loopback stand-in (model names unchanged), and the real
    offline models (``hf:models/…``, built by ``vlmguard models``) replaced by the tiny target, options kept."""
    text = re.sub(r"hf:models/[\w.\-]+", "hf:tiny-models/target", text)
    return SPEC.sub(lambda m: f"openai:{urls['guard' if 'Guard' in m.group(2) else 'vlm']}?model={m.group(2)}", text)


def _trl_batch(n_prompts: int = 2, generations: int = 2):
    from vlmguard.format import render

    prompts, completions, images, labels = [], [], [], []
    for p in range(n_prompts):
        image = Image.new("RGB", (64, 64), (60 * p, 90, 160))
        for g in range(generations):
            prompts.append([{"role": "user", "content": [{"type": "image", "image": image},
                                                         {"type": "text", "text": f"How do I use object {p}?"}]}])
            completions.append([{"role": "assistant", "content": render("t", "i", f"Use object {p} safely ({g}).")}])
            images.append(image)
            labels.append("harmful" if p == 0 else "benign")
    return prompts, completions, {"image": images, "label": labels, "trainer_state": None}


def _health(url: str) -> dict:
    return httpx.get(url.removesuffix("/v1") + "/health").json()


def _reward_sources() -> list[tuple[Path, str | None]]:
    """Every shipped rewards config, and every reward combination a shipped sweep writes inline (by name)."""
    found = [(path, None) for path in sorted((ROOT / "configs" / "rewards").glob("*.yaml"))]
    for path in sorted((ROOT / "configs" / "sweep").glob("*.yaml")):
        for name, spec in yaml.safe_load(path.read_text())["combinations"].items():
            inline = spec.get("config", spec) if isinstance(spec, dict) else spec
            if isinstance(inline, dict):
                found.append((path, name))
    return found


def _rewards_data(path: Path, combination: str | None, urls: dict[str, str]) -> dict:
    data = yaml.safe_load(local(path.read_text(), urls))
    if combination is None:
        return data
    spec = data["combinations"][combination]
    return spec.get("config", spec)


@pytest.mark.parametrize("path,combination", _reward_sources(),
                         ids=lambda v: v.name if isinstance(v, Path) else (v or ""))
def test_shipped_rewards_build_and_score(path, combination, stand_ins, tiny_models, tmp_path, monkeypatch):
    from vlmguard.rewards import RewardsConfig, build_rewards
    from vlmguard.rewards.run import _call

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny-models").symlink_to(tiny_models["target"].parent)
    cfg = RewardsConfig.from_dict(_rewards_data(path, combination, stand_ins), str(path))
    guard_before = _health(stand_ins["guard"])
    rs = build_rewards(cfg)  # servers checked: every model name the recipe sends is served
    prompts, completions, columns = _trl_batch()
    if cfg.target is None:  # a judge-calibration config: it scores answers given with the data (rewards compare)
        columns["answer"] = [f"Answer {i}: here is how to use it safely." for i in range(len(completions))]

    async def step():
        return await asyncio.gather(*[_call(f, prompts, completions, columns) for f in rs.funcs])
    results = asyncio.run(step())
    assert all(len(r) == len(completions) for r in results)
    # every judge call reached its judge: none failed (an image sent to a text-only Llama Guard is an HTTP 400)
    for name, counter in rs.context.counters.items():
        if name.startswith("judge:"):
            assert counter["unreachable"] == 0 and counter["verdicts"] > 0, (name, dict(counter))
    assert rs.context.counters["target"]["failed"] == 0
    guard_after = _health(stand_ins["guard"])
    if "Llama-Guard" in path.read_text():
        assert guard_after["generations"] > guard_before["generations"]
        assert guard_after["backend"].get("images_dropped", 0) == 0  # the conversation went, no image


def test_real_grpo_recipes_name_shipped_rewards():
    """The real-size GRPO recipes point at a shipped rewards config (built above) and at Llama Guard."""
    for path in sorted((ROOT / "configs" / "grpo").glob("qwen2_5_vl_*.yaml")):
        rewards = ROOT / yaml.safe_load(path.read_text())["rewards_config"]
        assert rewards.is_file() and rewards.parent.name == "rewards", path
        safety = yaml.safe_load(rewards.read_text())["rewards"]["safety"]
        assert safety["judge"]["type"] == "llama_guard" and not safety["judge"].get("image", False)


def test_shipped_paper_eval_runs_against_stand_ins(stand_ins, tmp_path):
    """configs/eval/paper_siuo.yaml as shipped (3 targets, 5 defences, the GPT-4o judge's name) on one SIUO item
    in the official layout: every model answers and every judge pass is reachable."""
    from layouts import make_siuo

    from vlmguard.eval import EvalConfig
    from vlmguard.eval.run import Evaluation

    data = yaml.safe_load(local((ROOT / "configs/eval/paper_siuo.yaml").read_text(), stand_ins))
    data["benchmarks"]["siuo"]["path"] = str(make_siuo(tmp_path / "siuo"))
    data.update(out=str(tmp_path / "out"), answer_max_new_tokens=8, judge_max_new_tokens=8, bootstrap=100)
    for d in data["defences"].values():
        d.update({k: 8 for k in ("max_new_tokens",) if d.get("rewriter")})
    report = Evaluation(EvalConfig.from_dict(data, overrides={"limit": 1})).run(progress=False)
    assert {r["target"] for r in report["results"]} == set(data["targets"])
    assert {r["defence"] for r in report["results"]} == set(data["defences"])
    assert all(r["missing"] == 0 and r["judge_unreachable"] == 0 for r in report["results"])
