#!/usr/bin/env bash
# One 8-GPU node: target and judge served by vLLM on GPUs 6 and 7, GRPO training on GPUs 0-5.
#   launch/grpo_node.sh configs/grpo/qwen2_5_vl_7b.yaml
# Override: TARGET_MODEL, JUDGE_MODEL, ACCELERATE_CONFIG, TRAIN_GPUS, TARGET_GPU, JUDGE_GPU.
set -euo pipefail
CONFIG=${1:?usage: launch/grpo_node.sh RECIPE.yaml}
TARGET_MODEL=${TARGET_MODEL:-Qwen/Qwen2.5-VL-7B-Instruct}
JUDGE_MODEL=${JUDGE_MODEL:-meta-llama/Llama-Guard-3-8B}
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-launch/accelerate/zero3.yaml}
TRAIN_GPUS=${TRAIN_GPUS:-0,1,2,3,4,5}
mkdir -p logs
CUDA_VISIBLE_DEVICES=${TARGET_GPU:-6} launch/vllm/serve.sh "$TARGET_MODEL" 8001 > logs/target.log 2>&1 &
CUDA_VISIBLE_DEVICES=${JUDGE_GPU:-7} launch/vllm/serve.sh "$JUDGE_MODEL" 8002 > logs/judge.log 2>&1 &
trap 'kill $(jobs -p) 2>/dev/null' EXIT
for port in 8001 8002; do
  until curl -sf "http://127.0.0.1:$port/health" > /dev/null; do sleep 5; done
done
NPROC=$(( $(tr -cd , <<< "$TRAIN_GPUS" | wc -c) + 1 ))
CUDA_VISIBLE_DEVICES=$TRAIN_GPUS accelerate launch --config_file "$ACCELERATE_CONFIG" --num_processes "$NPROC" \
  -m vlmguard.rl --config "$CONFIG"
