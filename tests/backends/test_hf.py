import pytest
from PIL import Image

from vlmguard.backends import SamplingParams, load_backend
from vlmguard.chat import user_chat, with_prefill
from vlmguard.errors import VLMGuardError


@pytest.fixture(scope="module")
def target(tiny_models):
    return load_backend(f"hf:{tiny_models['target']}?batch_size=3")


def _chats():
    colours = ["red", "blue", "green", "white", "black"]
    chats = [user_chat(f"Describe the {c} picture, please" + "!" * i, Image.new("RGB", (60 + 20 * i, 90), c))
             for i, c in enumerate(colours)]
    return chats + [user_chat("A question with no image at all"), user_chat("Hi")]


def test_batched_greedy_equals_one_by_one(target):
    chats = _chats()
    params = SamplingParams(max_new_tokens=10)
    batched = target.generate(chats, params)  # batches of 3, left-padded, mixed image/no-image
    single = [target.generate([c], params)[0] for c in chats]
    assert batched == single
    assert len(set(batched)) > 1 and all(isinstance(t, str) and t for t in batched)


def test_a_started_reply_is_continued(target):
    """A chat ending in a prefilled assistant message is templated as that reply's continuation (no new turn),
    and generation returns only what follows it."""
    chat = _chats()[0]
    text, _ = target._prompt(with_prefill(chat, "<threat>Zebra"))
    assert text == target._prompt(chat)[0] + "<threat>Zebra"
    finished = chat + [{"role": "assistant", "content": "<threat>Zebra"}]  # no prefix: a finished turn
    assert not target._prompt(finished)[0].endswith("<threat>Zebra")
    assert not target.generate([with_prefill(chat, "<threat>Zebra")], SamplingParams(max_new_tokens=4))[0] \
        .startswith("<threat>")


def test_sampling_is_seeded(target):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=7)
    chats = _chats()[:3]
    assert target.generate(chats, params) == target.generate(chats, params)


def test_stop_strings_cut(target):
    full = target.generate(_chats()[:1], SamplingParams(max_new_tokens=12))[0]
    stop = full[3:5]
    cut = target.generate(_chats()[:1], SamplingParams(max_new_tokens=12, stop=(stop,)))[0]
    assert cut == full[:full.find(stop)]


def test_bad_image_in_batch(target, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    chats = [_chats()[0], user_chat("x", bad)]
    with pytest.raises(VLMGuardError, match="bad.png"):
        target.generate(chats, SamplingParams(max_new_tokens=2))
    out = target.generate(chats, SamplingParams(max_new_tokens=2), on_error="none")
    assert out[0] and out[1] is None and target.stats["failed"] >= 1


def test_model_dir_errors(tiny_models, tmp_path):
    with pytest.raises(VLMGuardError, match="model directory not found"):
        load_backend(f"hf:{tmp_path / 'missing'}")
    (tmp_path / "noconfig").mkdir()
    with pytest.raises(VLMGuardError, match="has no config.json"):
        load_backend(f"hf:{tmp_path / 'noconfig'}")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((tiny_models["target"] / "config.json").read_text())
    with pytest.raises(VLMGuardError, match="has no processor"):
        load_backend(f"hf:{bare}")


def test_text_only_model_drops_images(tiny_models, tmp_path):
    """A text-only causal LM (e.g. a text judge) loads through the same spec and ignores images, counted."""
    from transformers import AutoProcessor, Qwen2Config, Qwen2ForCausalLM

    tok = AutoProcessor.from_pretrained(tiny_models["target"]).tokenizer
    tok.chat_template = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}" \
                        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=1, num_key_value_heads=1, eos_token_id=tok.eos_token_id)
    Qwen2ForCausalLM(cfg).save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    lm = load_backend(f"hf:{tmp_path / 'lm'}")
    assert not lm.vision
    out = lm.generate([user_chat("hello", Image.new("RGB", (32, 32)))], SamplingParams(max_new_tokens=3))
    assert isinstance(out[0], str) and lm.stats["images_dropped"] == 1
