"""VLMGuard-R1: a reasoning rewriter in front of any vision-language model.

Light to import: models, trainers and servers load only when used.
"""
__version__ = "0.1.0"
