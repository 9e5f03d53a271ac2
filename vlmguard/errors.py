"""The one user-facing error type: its message names the thing that is wrong and the fix."""


class VLMGuardError(Exception):
    """An error caused by user input (a path, a spec, a config, a server); the CLI prints it as one line."""
