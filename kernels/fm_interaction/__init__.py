"""FM's second-order term over [B, F, D] field vectors by the sum-square identity."""
