"""hstu_attention_jagged in Triton: the padded op's kernels with their jagged row addressing."""

from autorec.kernels.hstu_attention.triton import hstu_attention_jagged

__all__ = ["hstu_attention_jagged"]
