"""The eval YAML (tests/test_configs.py parses every shipped recipe): the paper recipe, overrides, and errors
that name the key and the fix."""
from pathlib import Path

import pytest

from vlmguard.errors import VLMGuardError
from vlmguard.eval import EvalConfig

ROOT = Path(__file__).resolve().parents[2]


def test_paper_siuo_is_the_papers_setting():
    c = EvalConfig.load(ROOT / "configs" / "eval" / "paper_siuo.yaml")
    assert [b.kind for b in c.benchmarks.values()] == ["siuo"] and c.benchmarks["siuo"].responses == 3
    assert "gpt-4o" in c.judge and c.answer_temperature > 0
    assert {"none", "adashield", "ecso", "rewrite", "vlmguard"} <= set(c.defences)
    assert all(spec.startswith("openai:http") for spec in c.targets.values())


def test_overrides_and_defence_types():
    c = EvalConfig.from_dict({"out": "o", "targets": {"t": "hf:x"}, "defences": ["none", {"mine": {
        "type": "pkg.mod:Cls", "k": 1}}], "benchmarks": {"b": {"kind": "siuo", "path": "p", "limit": 5}}},
        overrides={"limit": 2, "out": "elsewhere", "batch_size": None})
    assert c.out == "elsewhere" and c.benchmarks["b"].limit == 2 and c.batch_size == 16
    assert c.defences["mine"].type == "pkg.mod:Cls" and c.defences["mine"].options == {"k": 1}
    assert c.defences["none"].type == "none"


@pytest.mark.parametrize("data,message", [
    ({"out": "o", "targets": {"t": "hf:x"}, "benchmarks": {"b": {"kind": "siuo", "path": "p"}}, "judeg": "x"},
     r"unknown key `judeg` \(did you mean judge\?\)"),
    ({"out": "o", "targets": {"t": "hf:x"}, "benchmarks": {"b": {"kind": "siuo", "path": "p", "subset": ["a"]}}},
     r"unknown key `benchmarks.b.subset` \(did you mean subsets\?\)"),
    ({"out": "o", "targets": {"t": "hf:x"}, "benchmarks": {"b": {"path": "p"}}}, r"benchmarks.b needs `kind`"),
    ({"out": "o", "benchmarks": {"b": {"kind": "siuo", "path": "p"}}}, r"missing `targets`"),
    ([1, 2], r"an eval config is a mapping"),
    ({"out": "o", "targets": {"t": "hf:x"}, "benchmarks": {"b": {"kind": "siuo", "path": "p"}},
      "judge_max_new_tokens": "many"}, r"`judge_max_new_tokens` must be int, got 'many'"),
    ({"out": "o", "targets": {"t": "hf:x"}, "benchmarks": {"b": {"kind": "siuo", "path": "p", "limit": "5"}}},
     r"`benchmarks.b.limit` must be int or null, got '5'"),
    ({"out": "o", "targets": {"t": "hf:x"}, "benchmarks": {"b": {"kind": "records", "path": "p", "judge": True}}},
     r"judge: true names no judge"),
    ({"out": "o", "targets": {"t": "hf:x"}, "benchmarks": {"b": {"kind": "siuo", "path": "p"}}, "answer_top_p": "1"},
     r"`answer_top_p` must be float"),
    ({"out": "o", "targets": {"t": "hf:x"}, "benchmarks": {"b": {"kind": "siuo", "path": "p"}},
      "defences": ["none", "sft"], "baseline": "stf"}, r"baseline 'stf' is not one of the defences \(none, sft\)"),
])
def test_config_errors(data, message):
    with pytest.raises(VLMGuardError, match=message):
        EvalConfig.from_dict(data, "cfg.yaml")


def test_baseline_names_the_defence_paired_against():
    """`baseline` picks the defence every other one is paired against; without `none` and without a `baseline`
    there is no paired comparison (nothing to pair against), not an error."""
    base = {"out": "o", "targets": {"t": "hf:x"}, "benchmarks": {"b": {"kind": "siuo", "path": "p"}}}
    assert EvalConfig.from_dict({**base, "defences": ["none", "sft"]}).baseline == "none"
    assert EvalConfig.from_dict({**base, "defences": ["none", "sft"], "baseline": "sft"}).baseline == "sft"
    assert EvalConfig.from_dict({**base, "defences": ["sft", "grpo"]}).baseline is None


def test_typed_values_of_generic_fields():
    """dict / list fields are checked as such (a regression: `rubrics: {safe: file}` was rejected)."""
    c = EvalConfig.from_dict({"out": "o", "targets": {"t": "hf:x"}, "benchmarks": {"b": {
        "kind": "records", "path": "p", "rubrics": {"safe": "my.txt"}, "subsets": ["harmful"]}}})
    assert c.benchmarks["b"].rubrics == {"safe": "my.txt"} and c.benchmarks["b"].subsets == ["harmful"]
    with pytest.raises(VLMGuardError, match="`benchmarks.b.rubrics` must be dict"):
        EvalConfig.from_dict({"out": "o", "targets": {"t": "hf:x"}, "benchmarks": {"b": {
            "kind": "records", "path": "p", "rubrics": "my.txt"}}})
