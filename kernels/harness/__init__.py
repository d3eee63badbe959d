"""The kernel harness: the correctness gate, static checks and the sandbox for generated source,
and GPU timing.

- `gate.run_gate(spec, impl, ...)`: forward and backward against the reference on fresh inputs,
  rejecting the known reward hacks, each with a one-line reason (in-process: trusted code only).
- `static_check.check_source(source, signature)`: what generated source may not contain.
- `sandbox.evaluate_variant(op, variant, ...)`: a variant (template knobs or generated source)
  gated, and on a GPU timed, in a separate limited process.
- `bench.time_variant(...)`: do_bench medians against eager and torch.compile (CUDA only).
"""
