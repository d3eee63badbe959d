"""`triton_kernels`: a faster Triton implementation of one recommender op, correct first.

A candidate is the op plus either the knobs of its hand-written Triton template (block sizes,
warps, stages: what TPE samples) or `source`, the full text of a new kernel written against the
op's signature (what the LLM operator writes; the knobs are then unused and kept at their
defaults). The reference candidate is the template with its default knobs.

Every evaluation runs in the sandbox (autorec.kernels.harness.sandbox): a separate process with
a time limit and resource limits, static checks before generated source is compiled. A rejected
candidate raises, so the archive stores it as failed with the gate's reason (which the agent sees
among the recent failures) and it is never a parent.

Fitness, by the `fitness` setting:
- `speedup` (default, needs a GPU): the gate on the suite shapes, then `speedup`, the geometric
  mean over the suite shapes of PyTorch eager time over the candidate's time (forward plus
  backward where the op has gradients), do_bench medians with the L2 flushed. Fitness is the
  relative gain over the template's default knobs.
- `gate_only` (no GPU needed): the gate alone, on the interpreter shapes under TRITON_INTERPRET=1.
  Every correct candidate scores 0; the metrics carry `interpreter_gate_only=1` and describe()
  says so, so nobody reads a speed into it.
"""

from __future__ import annotations

import functools
import inspect
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import optuna
import pydantic

from autorec.errors import AutorecError, ConfigError
from autorec.space import Objective, Report, SearchSpace, SpaceOptions, SuiteMember

FITNESS_MODES = ("speedup", "gate_only")
# The suite model whose training uses each op (the one `autorec export` writes a config for).
OP_MODELS = {
    "fm_interaction": ("fm", "ctr"),
    "dcn_cross": ("dcnv2", "ctr"),
    "embedding_pool": ("deepfm", "ctr"),
    "hstu_attention": ("hstu", "sequential"),
    "hstu_attention_jagged": ("hstu", "sequential"),
}
SETTINGS_KEYS = {
    "op": "the op to search (autorec kernels list; default fm_interaction)",
    "fitness": "speedup (GPU: gate, then speed over eager) or gate_only (interpreter, no GPU)",
    "trials": "gate: fresh random inputs per shape and dtype (default 5, at least 5 counts)",
    "dtypes": "dtypes to gate and time, e.g. [float32] (default: every dtype the op has)",
    "time_limit": "seconds one sandboxed evaluation may take (default 300)",
}
MIN_TRIALS = 5


def _register_generated_kernels() -> None:
    """Training runs that name a generated kernel (`generated:<op>:<sha>`) can load it."""
    from autorec.kernels.harness.generated import register

    register()


_register_generated_kernels()


class KernelRejected(AutorecError):
    """A variant the gate or the sandbox refused; the message is the reason."""


class KernelCandidate(pydantic.BaseModel):
    """Base of the per-op Candidates: `op`, one field per template knob, optional `source`."""

    model_config = pydantic.ConfigDict(extra="forbid")

    op_name: ClassVar[str] = ""

    def knobs(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if k not in ("op", "source")}

    def variant(self) -> dict[str, Any]:
        source = getattr(self, "source", None)
        return {"source": source} if source else {"knobs": self.knobs()}

    @pydantic.model_validator(mode="after")
    def _knobs_unused_with_source(self):
        """With `source` the knobs mean nothing: keep them at their defaults, so one source
        is one candidate (one hash) whatever knobs came with it."""
        if getattr(self, "source", None):
            for name, field in type(self).model_fields.items():
                if name not in ("op", "source"):
                    object.__setattr__(self, name, field.default)
        return self

    def __reduce__(self):
        # Candidate classes are built per op at run time: rebuild the class where unpickled.
        return (_restore_candidate, (self.op_name, self.model_dump()))


def _restore_candidate(op: str, values: dict[str, Any]) -> KernelCandidate:
    return candidate_class(op).model_validate(values)


@functools.lru_cache(maxsize=None)
def candidate_class(op: str) -> type[KernelCandidate]:
    from autorec.kernels.harness.variants import MAX_SOURCE_CHARS
    from autorec.kernels.registry import get_op

    spec = get_op(op)
    fields: dict[str, Any] = {
        "op": (Literal[op], pydantic.Field(op, description="the op this kernel implements")),
    }
    for knob, values in spec.knobs.items():
        fields[knob] = (Literal[values], pydantic.Field(
            values[0], description=f"template knob {knob}, one of {', '.join(map(str, values))}"))
    fields["source"] = (str | None, pydantic.Field(
        None, max_length=MAX_SOURCE_CHARS,
        description=f"full Python source of a new kernel module defining `{spec.signature}` "
                    "with @triton.jit kernels; when set the knobs are unused"))
    cls = pydantic.create_model("KernelCandidate", __base__=KernelCandidate, **fields)
    cls.op_name = op
    return cls


class TritonKernelsSpace(SearchSpace):
    """Variants of one op's Triton kernel, gated against its PyTorch reference, then timed."""

    name: ClassVar[str] = "triton_kernels"
    version: ClassVar[str] = "1"
    Candidate: ClassVar[type[pydantic.BaseModel]] = KernelCandidate
    objectives: ClassVar[list[Objective]] = [Objective(name="speedup", direction="max")]
    gates: ClassVar[list[str]] = ["correct"]
    reported_metrics: ClassVar[list[str]] = [
        "triton_ms", "eager_ms", "compile_ms", "speedup_compile", "hbm_fraction",
        "max_abs_error", "gate_trials",
    ]
    needs_gpu: ClassVar[bool] = True

    def __init__(self, options: SpaceOptions | None = None):
        super().__init__(options)
        self.settings = self._checked_settings(dict(self.options.settings))
        self.op: str = self.settings.get("op", "fm_interaction")
        self.fitness: str = self.settings.get("fitness", "speedup")
        from autorec.kernels.registry import get_op

        self.spec = get_op(self.op)
        self.Candidate = candidate_class(self.op)
        if self.fitness == "gate_only":
            # The interpreter's gate needs no GPU, and it measures no speed: say so everywhere.
            self.needs_gpu = False
            self.objectives = [Objective(name="interpreter_gate_only", direction="max")]
            self.reported_metrics = ["max_abs_error", "max_grad_abs_error", "gate_trials"]

    def _checked_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(settings) - set(SETTINGS_KEYS))
        if unknown:
            raise ConfigError(f"triton_kernels space: unknown setting(s) {', '.join(unknown)}; "
                              f"known: {', '.join(SETTINGS_KEYS)}")
        if "op" in settings:
            from autorec.kernels.registry import get_op

            get_op(str(settings["op"]))  # an unknown op: UnknownNameError naming the known ones
            if settings["op"] not in OP_MODELS:
                raise ConfigError(f"triton_kernels space: op '{settings['op']}' has no suite "
                                  "model that uses it (OP_MODELS)")
        if settings.get("fitness", "speedup") not in FITNESS_MODES:
            raise ConfigError(f"triton_kernels space: fitness must be one of "
                              f"{', '.join(FITNESS_MODES)}, got {settings['fitness']!r}")
        trials = settings.get("trials", MIN_TRIALS)
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < MIN_TRIALS:
            raise ConfigError(f"triton_kernels space: trials must be an integer >= {MIN_TRIALS}")
        limit = settings.get("time_limit", 300)
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
            raise ConfigError("triton_kernels space: time_limit must be a positive number")
        dtypes = settings.get("dtypes")
        if isinstance(dtypes, str):
            settings["dtypes"] = [d.strip() for d in dtypes.split(",") if d.strip()]
        return settings

    # The interface.

    def describe(self) -> str:
        spec = self.spec
        knobs = "\n".join(f"- {k}: one of {', '.join(map(str, v))} (default {v[0]})"
                          for k, v in spec.knobs.items())
        if self.fitness == "gate_only":
            fitness = ("Fitness here is the correctness gate ALONE, under the Triton interpreter "
                       "on CPU (metric interpreter_gate_only=1): a correct candidate scores 0, a "
                       "rejected one fails. No speed is measured; nothing here is a timing.")
        else:
            fitness = ("Fitness: the candidate must pass the correctness gate on the suite "
                       "shapes; then `speedup`, the geometric mean over the suite shapes of "
                       "PyTorch eager time / candidate time (forward plus backward), measured on "
                       "a GPU with triton.testing.do_bench (median, L2 flushed), relative to the "
                       "template's default knobs.")
        atol = ", ".join(f"{str(d).removeprefix('torch.')}: atol {a:g}, rtol {r:g}"
                         for d, (a, r) in spec.tolerances.items())
        shapes = "; ".join(str(s) for s in spec.shapes["suite"])
        return "\n".join([
            f"Triton kernel search for the recommender op '{spec.name}'.",
            f"Signature every implementation must have: {spec.signature}",
            f"Gradients are checked for: {', '.join(spec.grad_inputs) or 'none'}.",
            f"Tolerances against the reference: {atol}.",
            f"Suite shapes: {shapes}. {'Memory-bound' if spec.memory_bound else 'Compute-bound'}.",
            "A candidate is either the hand-written template's knobs:",
            knobs,
            "or `source`: a complete Python module (imports only torch, triton, triton.language, "
            "math) defining the signature's function, which must compute the result, and its "
            "gradients through a torch.autograd.Function, with @triton.jit kernels it launches "
            "as kernel[grid](...). Refused: other imports, open/eval/exec/getattr, dunder or "
            "private attributes, try/except, streams, torch.nn/matmul/einsum or '@' on the host, "
            "and any output that still matches with the Triton launches skipped.",
            fitness,
        ])

    def knowledge(self) -> str:
        spec = self.spec
        reference = inspect.getsource(spec.reference)
        template = _template_source(self.op)
        return "\n".join([
            f"PyTorch reference of {spec.name} (the oracle):", "```python", reference.strip(), "```",
            "", f"The hand-written Triton template (its knobs are the candidate's fields):",
            "```python", template.strip(), "```",
        ])

    def reference(self) -> pydantic.BaseModel:
        return self.Candidate()

    def sample(self, trial: optuna.Trial) -> pydantic.BaseModel:
        values = {k: trial.suggest_categorical(k, list(v)) for k, v in self.spec.knobs.items()}
        return self.Candidate.model_validate({"op": self.op, **values})

    def suite(self) -> list[SuiteMember]:
        model, task = OP_MODELS[self.op]
        return [SuiteMember(model, "ml-100k", task)]

    def evaluate(self, candidate: pydantic.BaseModel, member: SuiteMember, report: Report
                 ) -> dict[str, float]:
        from autorec.kernels.harness.sandbox import evaluate_variant

        candidate = self.validate(candidate.model_dump())
        gate_only = self.fitness == "gate_only"
        result = evaluate_variant(
            self.op, candidate.variant(), mode="gate" if gate_only else "bench",
            shapes="interpreter" if gate_only else "suite", dtypes=self.settings.get("dtypes"),
            trials=self.settings.get("trials", MIN_TRIALS),
            device="cpu" if gate_only else "cuda", interpreter=gate_only,
            time_limit=float(self.settings.get("time_limit", 300)),
        )
        if not result["passed"]:
            raise KernelRejected(f"{result.get('stage', 'gate')}: {result['reason']}")
        metrics = {
            "correct": 1.0, "gate_trials": float(result["trials"]),
            "max_abs_error": float(result["max_abs_error"]),
            "max_grad_abs_error": float(result["max_grad_abs_error"]),
        }
        if "source" in candidate.variant():
            from autorec.kernels.harness.generated import save

            save(self.op, candidate.source)  # what the exported training setting names
        if gate_only:
            metrics["interpreter_gate_only"] = 1.0
            return metrics
        metrics.update(_timing_metrics(result["timings"]))
        return metrics

    def trainer_settings(self, candidate: pydantic.BaseModel, member: SuiteMember
                         ) -> dict[str, Any]:
        """The training setting that makes the member's model use this kernel."""
        variant = candidate.variant()
        if "source" in variant:
            from autorec.kernels.harness.generated import variant_id

            return {"kernels": {self.op: variant_id(self.op, variant["source"])}}
        return {"kernels": {self.op: variant["knobs"]}}


def _timing_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Geometric means over the suite shapes (and dtypes) of the bench rows."""
    key = "fwd_bwd_ms" if all("triton_fwd_bwd_ms" in r for r in rows) else "fwd_ms"

    def geomean(values: list[float]) -> float:
        return math.exp(sum(math.log(v) for v in values) / len(values))

    metrics = {
        "triton_ms": geomean([r[f"triton_{key}"] for r in rows]),
        "eager_ms": geomean([r[f"eager_{key}"] for r in rows]),
        "speedup": geomean([r[f"eager_{key}"] / r[f"triton_{key}"] for r in rows]),
    }
    if all(f"compile_{key}" in r for r in rows):
        metrics["compile_ms"] = geomean([r[f"compile_{key}"] for r in rows])
        metrics["speedup_compile"] = geomean([r[f"compile_{key}"] / r[f"triton_{key}"]
                                              for r in rows])
    fractions = [r["hbm_fraction"] for r in rows if "hbm_fraction" in r]
    if fractions:
        metrics["hbm_fraction"] = sum(fractions) / len(fractions)
    return metrics


def _template_source(op: str) -> str:
    import importlib.util

    found = importlib.util.find_spec(f"autorec.kernels.{op}.triton")
    return Path(found.origin).read_text() if found and found.origin else ""
