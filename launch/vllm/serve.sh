#!/usr/bin/env bash
# Serve a frozen model (downstream target, judge, synthesis teacher) with vLLM's OpenAI-compatible server.
#   CUDA_VISIBLE_DEVICES=6 launch/vllm/serve.sh Qwen/Qwen2.5-VL-7B-Instruct 8001
# Reached from vlmguard as openai:http://HOST:PORT/v1?model=MODEL
set -euo pipefail
MODEL=${1:?model id or path}
PORT=${2:-8000}
shift 2 || true
exec vllm serve "$MODEL" --port "$PORT" --host 0.0.0.0 --dtype auto --max-model-len "${MAX_MODEL_LEN:-8192}" \
  --gpu-memory-utilization "${GPU_MEMORY_UTILIZATION:-0.9}" --limit-mm-per-prompt '{"image": 1}' "$@"
