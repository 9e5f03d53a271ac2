#!/usr/bin/env bash
# GRPO rollouts in vLLM server mode (instead of colocate): a dedicated GPU generates for the policy, which pushes
# its weights over NCCL after every step. VLM prompts need vLLM >= 0.30 (--enable-scale-out).
#   CUDA_VISIBLE_DEVICES=7 launch/vllm/trl_server.sh outputs/sft-qwen2_5_vl_7b-merged
#   then train with: --use_vllm true --vllm_mode server --vllm_server_base_url http://HOST:8000
set -euo pipefail
MODEL=${1:?policy checkpoint (the same folder the trainer starts from)}
exec trl vllm-serve --model "$MODEL" --port "${PORT:-8000}" --gpu_memory_utilization "${GPU_MEMORY_UTILIZATION:-0.9}" \
  --max_model_len "${MAX_MODEL_LEN:-8192}"
