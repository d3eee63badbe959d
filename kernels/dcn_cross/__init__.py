"""One DCNv2 cross layer, x0 * (x W^T + b) + x, as one fused op."""
