"""HSTU's pointwise SiLU attention with a relative position bias, causal, over left-padded rows."""
