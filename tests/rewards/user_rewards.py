"""A user-defined reward, imported by the tests as ``rewards.user_rewards:brevity`` (module:function)."""


def brevity(prompts, completions, completion_ids=None, **kwargs):
    return [1.0 / (1 + len(c[0]["content"].split())) for c in completions]
