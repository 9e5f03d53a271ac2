"""What the SFT and GRPO recipes take from trl.ModelConfig reaches the loaded model; a model that cannot load fails
in one line before anything loads."""
import importlib.util
from types import SimpleNamespace

import pytest
import torch
import yaml
from conftest import ROOT, run_cli
from trl import ModelConfig

from vlmguard.config import parse_config
from vlmguard.errors import VLMGuardError
from vlmguard.training import check_model_source, model_init_kwargs


def _grpo(tiny_models, tmp_path, *extra):
    from vlmguard.rl import build_trainer
    from vlmguard.rl.config import GRPOScriptArguments, RewriterGRPOConfig

    (tmp_path / "rewards.yaml").write_text(yaml.safe_dump({"rewards": {"format": {}, "intent": {}}}))
    argv = ["--config", str(ROOT / "configs/grpo/tiny.yaml"), "--model_name_or_path", str(tiny_models["rewriter"]),
            "--dataset_path", str(tiny_models["sft_data"]), "--rewards_config", str(tmp_path / "rewards.yaml"),
            "--output_dir", str(tmp_path / "grpo"), "--max_steps", "1", "--per_device_train_batch_size", "4",
            "--num_generations", "4", "--max_train_samples", "8", "--save_strategy", "no", "--plot", "false", *extra]
    return build_trainer(*parse_config([GRPOScriptArguments, RewriterGRPOConfig, ModelConfig], argv, "vlmguard grpo"))


def _sft(tiny_models, tmp_path, *extra):
    from vlmguard.sft import build_trainer
    from vlmguard.sft.config import RewriterSFTConfig, SFTScriptArguments

    argv = ["--config", str(ROOT / "configs/sft/tiny.yaml"), "--model_name_or_path", str(tiny_models["rewriter"]),
            "--dataset_path", str(tiny_models["sft_data"]), "--output_dir", str(tmp_path / "sft"), "--max_steps", "1",
            "--max_train_samples", "8", "--save_strategy", "no", *extra]
    return build_trainer(*parse_config([SFTScriptArguments, RewriterSFTConfig, ModelConfig], argv, "vlmguard sft"))


@pytest.mark.parametrize("build", [_sft, _grpo], ids=["sft", "grpo"])
def test_attn_implementation_and_dtype_reach_the_loaded_model(build, tiny_models, tmp_path):
    trainer = build(tiny_models, tmp_path, "--attn_implementation", "eager", "--dtype", "bfloat16")
    assert trainer.model.config._attn_implementation == "eager"
    assert {p.dtype for p in trainer.model.parameters()} == {torch.bfloat16}
    trainer = build(tiny_models, tmp_path, "--dtype", "float32")
    assert trainer.model.config._attn_implementation != "eager"  # the default (sdpa) when none is set
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}


def test_model_init_kwargs_keys():
    args = SimpleNamespace(trust_remote_code=True, model_init_kwargs={"dtype": "float16", "use_cache": False})
    kwargs, quantization = model_init_kwargs(ModelConfig(dtype="bfloat16", attn_implementation="eager",
                                                         model_revision="v1"), args)
    # the config's explicit model_init_kwargs win, as in TRL's own scripts
    assert kwargs == {"revision": "v1", "trust_remote_code": True, "dtype": "float16", "attn_implementation": "eager",
                      "use_cache": False} and quantization is None
    both = ModelConfig(load_in_4bit=True)
    both.load_in_8bit = True  # ModelConfig's own check runs only at construction (parse time)
    with pytest.raises(VLMGuardError, match="load_in_4bit or load_in_8bit, not both"):
        model_init_kwargs(both, args)


@pytest.mark.skipif(torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None,
                    reason="bitsandbytes and a CUDA GPU are here: 4-bit loading works")
@pytest.mark.parametrize("build,missing", [(_sft, ()), (_grpo, ("--rewards_config", "none.yaml"))],
                         ids=["sft", "grpo"])
def test_load_in_4bit_without_gpu_fails_before_anything_loads(build, missing, tiny_models, tmp_path):
    # the data (and rewards) are missing too: their errors would come first if anything else ran before
    with pytest.raises(VLMGuardError, match=r"load_in_4bit: bitsandbytes quantization needs a CUDA GPU and "
                                            r"`pip install bitsandbytes`"):
        build(tiny_models, tmp_path, "--load_in_4bit", "true", "--use_peft", "true",
              "--dataset_path", str(tmp_path / "none"), *missing)
    assert not (tmp_path / "sft").exists() and not (tmp_path / "grpo").exists()


def test_check_model_source(tiny_models, tmp_path, monkeypatch):
    from huggingface_hub import constants

    check_model_source(str(tiny_models["rewriter"]), "model")  # a local model folder
    with pytest.raises(VLMGuardError, match="has no config.json"):
        check_model_source(str(tmp_path), "model")  # a local folder is checked as one, whatever the cache holds
    with pytest.raises(VLMGuardError, match=r"'./outputs/x' is not a local folder \(no such path\) — hint"):
        check_model_source("./outputs/x", "model", " — hint")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(VLMGuardError, match=r"^model 'org/name' is not a local folder and not in the Hugging Face "
                                            r"cache \(offline mode\) — hint$"):
        check_model_source("org/name", "model", " — hint")
    snapshot = tmp_path / "hub" / "models--org--name" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--name" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--name" / "refs" / "main").write_text("abc")
    check_model_source("org/name", "model")  # cached: transformers loads it offline
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    check_model_source("other/name", "model")  # online: transformers downloads it


def test_grpo_without_its_sft_start_says_so_in_one_line(tmp_path):
    """The shipped tiny GRPO recipe run before the SFT it starts from (outputs/sft-tiny-40 is not there)."""
    out = run_cli("grpo", "--config", str(ROOT / "configs/grpo/tiny.yaml"), cwd=tmp_path, timeout=120,
                  env={"HF_HUB_OFFLINE": "1"})
    assert out.returncode == 1, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) < 5 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "'outputs/sft-tiny-40' is not a local folder" in out.stderr and "vlmguard sft" in out.stderr
    assert not (tmp_path / "outputs").exists()
