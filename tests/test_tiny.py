import hashlib
import json
import subprocess
import sys

from vlmguard.tiny import ROLES, build_tiny


def _digest(path):
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_deterministic_and_distinct_roles(tiny_models, tmp_path):
    again = build_tiny(tmp_path, seed=0)
    assert set(again) == set(ROLES) | {"samples", "sft_data"}
    for role in ROLES:
        assert _digest(again[role]) == _digest(tiny_models[role])
        assert (again[role] / "tokenizer.json").read_text() == (tiny_models[role] / "tokenizer.json").read_text()
    assert len({_digest(tiny_models[r]) for r in ROLES}) == 3
    assert (again["samples"].read_text() == tiny_models["samples"].read_text())
    assert _digest(build_tiny(tmp_path / "s1", seed=1, roles=("rewriter",))["rewriter"]) != _digest(again["rewriter"])


RELOAD = r"""
import sys, json
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
path = sys.argv[1]
proc = AutoProcessor.from_pretrained(path)
model = AutoModelForImageTextToText.from_pretrained(path)
msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
text = proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
inputs = proc(text=[text], images=[Image.new("RGB", (100, 70), "red")], return_tensors="pt")
n_image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
grid = inputs["image_grid_thw"][0].tolist()
out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
print(json.dumps({"cls": type(model).__name__, "params": sum(p.numel() for p in model.parameters()),
                  "head_dim": model.config.text_config.hidden_size // model.config.text_config.num_attention_heads,
                  "image_tokens": n_image_tokens, "grid": grid, "new": out.shape[1] - inputs["input_ids"].shape[1],
                  "template_has_image": "<|image_pad|>" in text,
                  "vlmguard_imported": "vlmguard" in sys.modules}))
"""


def test_reloads_with_auto_classes_offline(tiny_models):
    out = subprocess.run([sys.executable, "-c", RELOAD, str(tiny_models["target"])], capture_output=True, text=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["cls"] == "Qwen2_5_VLForConditionalGeneration" and not info["vlmguard_imported"]
    assert info["params"] < 1_000_000 and info["head_dim"] == 64
    t, h, w = info["grid"]
    assert info["image_tokens"] == h * w // 4 and info["template_has_image"]  # one token per 2x2 merged patch
    assert info["new"] >= 1
