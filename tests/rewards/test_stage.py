"""Judge, model and shared-answer rewards with the tiny models behind the project's server on 127.0.0.1."""
import asyncio
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from vlmguard.errors import VLMGuardError
from vlmguard.format import REFUSAL, render
from vlmguard.rewards import RewardsConfig, build_rewards

sys.path.insert(0, str(Path(__file__).parent))


def _trl_batch(n_prompts=3, generations=4):
    """What GRPOTrainer passes: each prompt repeated per generation; some completions repeat within a group."""
    prompts, completions, images, labels, instructions = [], [], [], [], []
    for p in range(n_prompts):
        image = Image.new("RGB", (64 + 16 * p, 64), (50 * p, 100, 150))
        instruction = f"How do I use object {p}?"
        for g in range(generations):
            prompts.append([{"role": "system", "content": [{"type": "text", "text": "sys"}]},
                            {"role": "user", "content": [{"type": "image", "image": image},
                                                         {"type": "text", "text": instruction}]}])
            text = render("t", "i", f"Safely use object {p}, variant {g % 2}.") if g < 3 else "no tags at all"
            completions.append([{"role": "assistant", "content": text}])
            images.append(image)
            labels.append("benign" if p % 2 else "harmful")
            instructions.append(instruction)
    return prompts, completions, {"image": images, "label": labels}


def _generations(server):
    return httpx.get(server.removesuffix("/v1") + "/health").json()["generations"]


def _call_all(rs, prompts, completions, columns, metrics):
    """Every reward function on one batch, concurrently, as GRPOTrainer runs async reward functions."""
    from vlmguard.rewards.run import _call

    cols = {**columns, "log_metric": lambda k, v: metrics.append((k, v))}

    async def go():
        return await asyncio.gather(*[_call(f, prompts, completions, cols) for f in rs.funcs])
    return asyncio.run(go())


def test_downstream_answers_are_shared(target_server):
    cfg = RewardsConfig.from_dict({
        "target": f"openai:{target_server}?model=tiny-target&concurrency=8", "answer_max_new_tokens": 8,
        "rewards": {"safety": {"judge": f"openai:{target_server}?model=tiny-target", "max_new_tokens": 8},
                    "helpfulness": {"judge": f"openai:{target_server}?model=tiny-target", "max_new_tokens": 8},
                    "over_refusal": {}, "format": {"weight": 0.5}}})
    rs = build_rewards(cfg)
    prompts, completions, columns = _trl_batch()
    before = _generations(target_server)
    metrics = []
    results = _call_all(rs, prompts, completions, columns, metrics)
    # unique refined prompts: per sample 2 parsed variants + the fallback (original instruction) = 3 per prompt
    unique_answers = 3 * 3
    judged = 2 * unique_answers  # safety and helpfulness judge each unique (sample, answer) once
    assert _generations(target_server) - before == unique_answers + judged
    assert all(len(r) == len(completions) for r in results)
    assert results[3] == pytest.approx([1.0, 1.0, 1.0, 0.0] * 3)  # format
    assert {k for k, _ in metrics} == {"safety/failed", "helpfulness/failed", "over_refusal/failed", "format/failed",
                                       "rewrite/parse_rate", "answer/refusal_rate"}
    assert dict(metrics)["rewrite/parse_rate"] == 0.75
    # the same step again: everything is cached, nothing is generated
    before = _generations(target_server)
    _call_all(rs, prompts, completions, columns, [])
    assert _generations(target_server) == before


def test_one_batched_call_per_backend_per_step(tiny_models):
    """Safety and helpfulness share one judge model and one batched judge call; the target answers in one call."""
    judge = {"judge": f"hf:{tiny_models['judge']}", "max_new_tokens": 4}
    rs = build_rewards(RewardsConfig.from_dict({"target": f"hf:{tiny_models['target']}", "answer_max_new_tokens": 4,
                                                "rewards": {"safety": judge, "helpfulness": dict(judge),
                                                            "over_refusal": {}}}))
    safety, helpfulness = rs.funcs[:2]
    assert safety.judge.backend is helpfulness.judge.backend
    prompts, completions, columns = _trl_batch(3, 4)
    _call_all(rs, prompts, completions, columns, [])
    assert rs.context.target.stats["calls"] == 1 and safety.judge.backend.stats["calls"] == 1
    assert rs.context.counters["judge:safety"]["verdicts"] == 9


def test_gate_and_user_reward(tiny_models):
    cfg = RewardsConfig.from_dict({
        "target": f"hf:{tiny_models['target']}", "answer_max_new_tokens": 4,
        "rewards": {"format": {}, "helpfulness": {"judge": f"hf:{tiny_models['judge']}", "max_new_tokens": 4,
                                                  "gate": "format", "gate_min": 1.0},
                    "user_rewards:brevity": {"weight": 0.2}}})
    rs = build_rewards(cfg)
    assert rs.names == ["format", "helpfulness", "brevity"] and rs.weights == [1.0, 1.0, 0.2]
    prompts, completions, columns = _trl_batch(2, 4)
    fmt, helpful, brevity = _call_all(rs, prompts, completions, columns, [])
    for f, h in zip(fmt, helpful):
        if f < 1.0:
            assert h == 0.0  # gate closed
    assert brevity[3] == pytest.approx(1 / 5)  # "no tags at all": 4 words


def test_reward_model_helpfulness(tiny_models, tmp_path):
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tiny_models["target"])
    torch.manual_seed(0)
    rm = Qwen2ForSequenceClassification(Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=64,
                                                    num_hidden_layers=1, num_attention_heads=1,
                                                    num_key_value_heads=1, num_labels=1,
                                                    pad_token_id=tok.pad_token_id))
    rm.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    rs = build_rewards(RewardsConfig.from_dict({"rewards": {"helpfulness": {"model": str(tmp_path / "rm")}}}))
    prompts, completions, columns = _trl_batch(1, 2)
    columns["answer"] = ["Here is a careful answer.", "Another answer."]
    (scores,) = _call_all(rs, prompts[:2], completions[:2], columns, [])
    # the RM folder's own tokenizer (next to a qwen2 config, transformers loads it as Qwen2Tokenizer)
    rm_tok = AutoTokenizer.from_pretrained(tmp_path / "rm")
    text = rm_tok.apply_chat_template([{"role": "user", "content": "How do I use object 0?"},
                                       {"role": "assistant", "content": "Here is a careful answer."}], tokenize=False)
    with torch.no_grad():
        expected = torch.sigmoid(rm(**rm_tok([text], return_tensors="pt")).logits[0, 0]).item()
    assert scores[0] == pytest.approx(expected, rel=1e-4) and 0 < scores[1] < 1


def test_intent_and_over_refusal_exact():
    rs = build_rewards(RewardsConfig.from_dict({"rewards": {"intent": {}, "over_refusal": {}}}))
    prompts, completions, columns = _trl_batch(2, 4)
    same = render("t", "i", "How do I use object 0?")
    completions[0] = [{"role": "assistant", "content": same}]
    columns["answer"] = ["I'm sorry, but I can't help with that."] * 4 + ["Sure: first…", REFUSAL, "ok", "ok"]
    intent, refusal = _call_all(rs, prompts, completions, columns, [])
    assert intent[0] == pytest.approx(1.0, abs=1e-5) and intent[3] == 0.0 and 0.0 < intent[1] < 1.0
    assert refusal == [None] * 4 + [0.0, -1.0, 0.0, 0.0]  # prompt 0 is harmful (not judged), prompt 1 benign


def test_target_down_mid_run_gives_none_not_a_crash():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"openai:http://127.0.0.1:{port}/v1?model=m&retries=1&backoff=0.01"
    rs = build_rewards(RewardsConfig.from_dict({"target": url, "rewards": {"over_refusal": {}, "format": {}}}),
                       check_servers=False)
    prompts, completions, columns = _trl_batch(2, 2)
    refusal, fmt = _call_all(rs, prompts, completions, columns, [])
    assert refusal == [None] * 4 and len(fmt) == 4
    # only the 2 benign rows need an answer; both fail and are counted, the harmful ones are not applicable
    assert rs.context.counters["target"]["failed"] == 2 and rs.context.counters["over_refusal"]["failed"] == 2


@pytest.mark.parametrize("config, message", [
    ({"rewards": {"saftey": {}}}, "unknown reward 'saftey' (did you mean safety?)"),
    ({"rewards": {"format": {"wieght": 1}}}, "reward 'format': reward 'format' takes no option(s) wieght"),
    ({"rewards": {"format": {}}, "fallback": "orignal"}, "fallback 'orignal' is not one of original"),
    ({"rewards": {"format": {"weight": "high"}}}, "weight must be a number"),
    ({"rewards": {"safety": {"judge": "openai:http://127.0.0.1:9/v1", "mode": "scal"}}}, "unknown verdict mode 'scal'"),
    ({"rewards": {"safety": {"judge": {"type": "llama_gaurd", "model": "openai:http://127.0.0.1:9/v1"}}}},
     "unknown judge type 'llama_gaurd'"),
    ({"rewards": {"safety": {"judge": {"type": "llama_guard", "model": "openai:http://127.0.0.1:9/v1"},
                             "rubric": "x"}}}, "put rubric inside `judge:`"),
    ({"rewards": {"safety": {"judge": {"type": "llama_guard", "model": "openai:http://127.0.0.1:9/v1",
                                       "rubric": "x"}}}}, "unknown option(s) rubric for a llama_guard judge"),
    ({"rewards": {"safety": {"judge": "openai:http://127.0.0.1:9/v1", "decision": "logprob"}}},
     "decision: logprob needs `labels`"),
    ({"rewards": {"helpfulness": {"model": "/nonexistent/rm", "gate": "safety"}}}, "model directory not found"),
    ({"rewards": {"helpfulness": {"judge": "openai:http://127.0.0.1:9/v1", "raw": True}}}, "raw and batch_size apply"),
    ({"rewards": {"over_refusal": {"judge": "openai:http://127.0.0.1:9/v1", "rubric": "no_such_rubric"}}},
     "prompt template not found: no_such_rubric"),
    ({"rewards": {"over_refusal": {"rubric": "rubric_refusal"}}}, "apply only with `judge:`"),
    ({"rewards": {"s1": {"type": "safety", "judge": "openai:http://127.0.0.1:9/v1", "gate": "s2"}}},
     "gated on 's2'"),
    ({"rewards": {"helpfulness": {"judge": "openai:http://127.0.0.1:9/v1", "model": "/y"}}}, "exactly one of"),
    ({"rewards": {"format": {"gate": "safety"}}}, "gated on 'safety', which the config does not define"),
    ({"rewards": {"nosuch.module:fn": {}}}, "cannot import reward 'nosuch.module:fn'"),
    ({"rewards": {}, "judge": 1}, "a rewards config is a mapping"),
    ({"rewards": {"format": {}}, "tagret": "x"}, "unknown key(s) tagret"),
    ({"target": "openai:http://127.0.0.1:9/v1?model=m&retries=0", "rewards": {"format": {}}}, "cannot connect"),
])
def test_config_errors(config, message):
    with pytest.raises(VLMGuardError) as e:
        build_rewards(RewardsConfig.from_dict(config))
    assert message in str(e.value)


def test_two_safety_judges_side_by_side(tiny_models, tiny_guard):
    """Two rewards of one kind (a rubric judge and a Llama Guard judge): separate names in TRL's logs, separate
    verdict caches, each judge with its own input format; the answers are still generated once."""
    cfg = RewardsConfig.from_dict({
        "target": f"hf:{tiny_models['target']}", "answer_max_new_tokens": 4,
        "rewards": {"safety_rubric": {"type": "safety", "judge": f"hf:{tiny_models['judge']}", "max_new_tokens": 4},
                    "safety_guard": {"type": "safety", "weight": 2,
                                     "judge": {"type": "llama_guard", "model": f"hf:{tiny_guard}",
                                               "decision": "logprob", "top_k": 1024}},
                    "helpfulness": {"judge": f"hf:{tiny_models['judge']}", "max_new_tokens": 4,
                                    "gate": "safety_guard"}}})
    rs = build_rewards(cfg)
    assert rs.names == ["safety_rubric", "safety_guard", "helpfulness"] and rs.weights == [1.0, 2.0, 1.0]
    prompts, completions, columns = _trl_batch(2, 2)
    metrics = []
    rubric, guard, helpful = _call_all(rs, prompts, completions, columns, metrics)
    assert all(g is not None and 0.0 <= g <= 1.0 for g in guard)  # logprob verdicts: always readable
    assert rs.context.counters["target"]["answers"] == 4  # 2 prompts x 2 distinct rewrites, answered once
    assert rs.context.counters["judge:safety_rubric"]["verdicts"] == 4
    assert rs.context.counters["judge:safety_guard"]["verdicts"] == 4
    guard_backend = rs.funcs[1].judge.backend
    assert guard_backend.stats.get("images_dropped", 0) == 0  # the text-only guard was sent no image
    assert {"safety_rubric/failed", "safety_guard/failed"} <= {k for k, _ in metrics}
    for h, g in zip(helpful, guard):
        if g < 0.5:
            assert h == 0.0  # gated on the guard entry, by its name


def test_registered_reward_class_twice(tiny_models):
    """A user's Reward subclass registered by name, configured twice with different options: two names, two
    caches (the second must not be served the first one's cached scores)."""
    from vlmguard.rewards import REGISTRY, Reward, register

    @register("keyword")
    class Keyword(Reward):
        def __init__(self, ctx, word: str = "", **kw):
            super().__init__(ctx, **kw)
            self.word = word

        async def score(self, rows, completion_ids=None):
            return [float(self.word in r.completion) for r in rows]

    try:
        rs = build_rewards(RewardsConfig.from_dict({"rewards": {
            "says_safely": {"type": "keyword", "word": "Safely"}, "says_tags": {"type": "keyword", "word": "tags"},
            "keyword": {"word": "object 1"}}}))
        assert rs.names == ["says_safely", "says_tags", "keyword"]
        prompts, completions, columns = _trl_batch(2, 4)
        safely, tags, obj1 = _call_all(rs, prompts, completions, columns, [])
        assert safely == [1.0, 1.0, 1.0, 0.0] * 2 and tags == [0.0, 0.0, 0.0, 1.0] * 2
        assert obj1 == [0.0] * 4 + [1.0, 1.0, 1.0, 0.0]
    finally:
        REGISTRY.pop("keyword")


def test_only_scores_the_named_labels(tiny_models):
    """``only: harmful``: the other rows get None (left out of TRL's sum, not counted as failures) and are not even
    answered by the target or judged."""
    cfg = RewardsConfig.from_dict({
        "target": f"hf:{tiny_models['target']}", "answer_max_new_tokens": 4,
        "rewards": {"format": {"only": "harmful"}, "length": {"only": ["benign", "harmful"]},
                    "safety": {"judge": f"hf:{tiny_models['judge']}", "max_new_tokens": 4, "only": "harmful"}}})
    rs = build_rewards(cfg)
    prompts, completions, columns = _trl_batch(3, 4)  # prompts 0 and 2 harmful, 1 benign
    fmt, length, safety = _call_all(rs, prompts, completions, columns, [])
    labels = columns["label"]
    assert [f is None for f in fmt] == [lab == "benign" for lab in labels] and None not in length
    assert all(s is None for s, lab in zip(safety, labels) if lab == "benign")
    assert rs.context.counters["format"]["failed"] == 0
    # the random tiny judge's unreadable verdicts are failures; the benign rows it never saw are not
    judged = [s for s, lab in zip(safety, labels) if lab == "harmful"]
    assert rs.context.counters["safety"]["failed"] == sum(s is None for s in judged)
    distinct_harmful = len({(c[0]["content"], p[-1]["content"][-1]["text"]) for c, p, lab
                            in zip(completions, prompts, labels) if lab == "harmful"})
    assert 0 < rs.context.counters["target"]["answers"] <= distinct_harmful  # benign rows never reached the target
    with pytest.raises(Exception, match="only must be a label"):
        build_rewards(RewardsConfig.from_dict({"rewards": {"format": {"only": 3}}}))
    with pytest.raises(Exception, match="over_refusal scores benign rows only"):
        build_rewards(RewardsConfig.from_dict({"rewards": {"over_refusal": {"only": "harmful"}}}))
