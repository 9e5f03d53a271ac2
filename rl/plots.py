"""Reward curves as a PNG at the end of training (from the trainer's log history)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback


def plot_rewards(log_history: list[dict[str, Any]], path: str | Path, title: str = "GRPO rewards") -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["reward"] + sorted({k for h in log_history for k in h if k.startswith("rewards/") and k.endswith("/mean")})
    series = {k: [(h["step"], h[k]) for h in log_history if k in h and "step" in h] for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, pts in series.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k.removeprefix("rewards/").removesuffix("/mean"),
                linewidth=2.2 if k == "reward" else 1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


class RewardCurveCallback(TrainerCallback):
    """Writes ``reward_curves.png`` (total and per-reward means) into the output folder when training ends."""

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            history = [{**h, "step": h.get("step", i)} for i, h in enumerate(state.log_history)]
            plot_rewards(history, Path(args.output_dir) / "reward_curves.png")
