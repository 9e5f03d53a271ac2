"""Configuration of ``vlmguard synth``: one YAML file, every field overridable on the command line."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SynthConfig:
    data: str = field(default=None, metadata={"help": "Samples in the record schema: .json/.jsonl/.parquet or a "
                                                      "`datasets` folder; image paths relative to the file."})
    out: str = field(default=None, metadata={"help": "Output folder: records.jsonl (every stage's raw output), "
                                                     "dataset/ (the SFT dataset), summary.json."})
    teacher: str = field(default=None, metadata={"help": "Backend spec of the teacher VLM that runs the three "
                                                         "stages, e.g. openai:http://HOST:8000/v1?model=OpenGVLab/"
                                                         "InternVL2_5-38B (the paper's teacher)."})
    safe_responder: str | None = field(default=None, metadata={
        "help": "Backend spec that writes a missing safe_response (a safety-aligned VLM). Optional."})
    unsafe_responder: str | None = field(default=None, metadata={
        "help": "Backend spec that writes a missing unsafe_response (an unaligned VLM). Optional."})
    lenient: bool = field(default=False, metadata={
        "help": "When a stage's answer lacks its tag, use the whole answer instead of dropping the sample "
                "(for teachers that do not follow formats; the other filters still apply)."})
    batch_size: int = field(default=16, metadata={"help": "Samples in flight at once; each stage runs as one "
                                                          "batch (hf) or that many concurrent requests (openai)."})
    max_new_tokens: int = field(default=512, metadata={"help": "Token budget of each teacher answer."})
    temperature: float = field(default=0.0, metadata={"help": "Teacher sampling temperature (0 = greedy)."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N samples."})
    max_image_side: int | None = field(default=1024, metadata={
        "help": "Downscale images whose longer side exceeds this before they are sent and stored."})
    repeat_threshold: float = field(default=0.5, metadata={
        "help": "Drop a refined prompt that shares at least this fraction of the unsafe response's word 6-grams."})
    hindsight_template: str = field(default="synth_hindsight", metadata={"help": "Stage 1 template (name or path)."})
    causal_template: str = field(default="synth_causal", metadata={"help": "Stage 2 template (name or path)."})
    intent_template: str = field(default="synth_intent", metadata={"help": "Stage 3a template (name or path)."})
    prompt_template: str = field(default="synth_prompt", metadata={"help": "Stage 3b template (name or path)."})
    safe_responder_template: str = field(default="synth_safe_responder", metadata={
        "help": "System prompt of the safe responder."})
    unsafe_responder_template: str = field(default="synth_unsafe_responder", metadata={
        "help": "System prompt of the unsafe responder."})
    rewriter_system: str = field(default="rewriter_system", metadata={
        "help": "The rewriter's system prompt written into the SFT prompts (name or path)."})

    def __post_init__(self) -> None:
        from ..errors import VLMGuardError

        missing = [k for k in ("data", "out", "teacher") if not getattr(self, k)]
        if missing:
            raise VLMGuardError(f"synth needs {', '.join(missing)}: set them in the YAML config or as --{missing[0]} ...")
        if self.batch_size < 1:
            raise VLMGuardError("batch_size must be at least 1")
