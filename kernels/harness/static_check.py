"""Static checks of generated kernel source, before a byte of it is compiled or run.

A generated kernel is Python that defines one entry function with the op's signature and at
least one `@triton.jit` kernel it launches. Everything else is refused by reading the syntax tree:

- imports outside the allow-list (math, torch, triton, triton.language), relative or star imports;
- builtins that reach the file system, the interpreter or other code (open, eval, exec, compile,
  __import__, getattr, setattr, globals, ...), any dunder or private attribute (`x.__class__`,
  `torch._C`), which is how sandbox escapes walk from an object to `os`;
- torch and triton modules that read or write files, load code, start processes or work on
  another stream (torch.hub, torch.load, torch.utils, torch.ops, torch.cuda.Stream, triton.runtime,
  triton.testing, ...), and assignments to any module attribute (patched timers or comparisons);
- `try`/`except` (the classic "fall back to PyTorch when the kernel fails" hack);
- host code that computes the op with torch instead of a kernel: torch.nn, matmul, einsum,
  embedding_bag, scatter/index adds and the `@` operator outside `@triton.jit` functions.

The checks are a first line only: the gate then proves at run time that the output depends on a
Triton launch, and the sandbox runs the code in a separate, limited process.
"""

from __future__ import annotations

import ast
import dataclasses

ALLOWED_MODULES = ("math", "torch", "triton", "triton.language")

FORBIDDEN_BUILTINS = frozenset({
    "open", "eval", "exec", "compile", "__import__", "getattr", "setattr", "delattr", "globals",
    "locals", "vars", "dir", "input", "breakpoint", "exit", "quit", "help", "memoryview",
    "__builtins__", "__loader__", "__spec__", "__file__",
})  # fmt: skip

# Dotted prefixes under torch that touch files, code, processes or streams.
FORBIDDEN_TORCH = (
    "torch.hub", "torch.load", "torch.save", "torch.from_file", "torch.utils", "torch.ops",
    "torch.classes", "torch.library", "torch.jit", "torch.compile", "torch.package",
    "torch.multiprocessing", "torch.distributed", "torch.backends", "torch.fx", "torch.export",
    "torch.cuda.Stream", "torch.cuda.stream", "torch.cuda.set_stream", "torch.cuda.ExternalStream",
    "torch.cuda.streams", "torch.cuda.Event", "torch.cuda.graph", "torch.cuda.CUDAGraph",
    "torch.set_default_device", "torch.testing", "torch.set_printoptions", "torch.overrides",
)  # fmt: skip

# Host-code torch calls that would compute a recommender op's result without a kernel.
FORBIDDEN_TORCH_COMPUTE = (
    "torch.nn", "torch.matmul", "torch.mm", "torch.bmm", "torch.einsum", "torch.addmm",
    "torch.addbmm", "torch.baddbmm", "torch.addmv", "torch.mv", "torch.dot", "torch.tensordot",
    "torch.inner", "torch.outer", "torch.linear", "torch.bilinear", "torch.embedding",
    "torch.embedding_bag", "torch.segment_reduce", "torch.index_add", "torch.scatter_add",
    "torch.scatter_reduce", "torch.index_reduce", "torch.softmax", "torch.sigmoid", "torch.silu",
    "torch.special", "torch.linalg", "torch.fft", "torch.sparse", "torch.func", "torch.vmap",
)  # fmt: skip
FORBIDDEN_METHODS = frozenset({
    "matmul", "mm", "bmm", "einsum", "addmm", "baddbmm", "addmv", "mv", "tensordot",
    "index_add", "index_add_", "scatter_add", "scatter_add_", "scatter_reduce",
    "scatter_reduce_", "index_reduce", "index_reduce_", "embedding_bag", "register_hook",
})  # fmt: skip

# What a kernel module may use from the top-level triton namespace.
TRITON_ALLOWED = frozenset({
    "jit", "autotune", "heuristics", "Config", "cdiv", "next_power_of_2", "language",
})  # fmt: skip
JIT_DECORATORS = frozenset({"triton.jit", "triton.autotune", "triton.heuristics"})


class StaticCheckError(Exception):
    """Generated source that is refused before it runs; the message is the reason."""


@dataclasses.dataclass(frozen=True)
class CheckedSource:
    """What the checks learned: the entry point and the Triton kernels the source defines."""

    entry: str
    kernels: tuple[str, ...]


def signature_parameters(signature: str) -> tuple[str, list[str]]:
    """(function name, parameter names) of an OpSpec signature such as
    'def fm_interaction(x: Tensor) -> Tensor  # x [B, F, D] -> [B]'."""
    text = signature.split("#", 1)[0].strip()
    tree = ast.parse(text + ": ...")
    func = tree.body[0]
    assert isinstance(func, ast.FunctionDef)
    args = func.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    return func.name, names


def check_source(source: str, signature: str) -> CheckedSource:
    """Raise StaticCheckError with the first reason `source` is refused; else what it defines."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise StaticCheckError(f"syntax error at line {err.lineno}: {err.msg}") from None
    entry, params = signature_parameters(signature)
    checker = _Checker()
    checker.visit(tree)
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    if entry not in functions:
        raise StaticCheckError(f"no top-level function '{entry}' with the op's signature")
    found = [a.arg for a in (*functions[entry].args.posonlyargs, *functions[entry].args.args,
                             *functions[entry].args.kwonlyargs)]  # fmt: skip
    if found != params:
        raise StaticCheckError(
            f"'{entry}' takes ({', '.join(found)}); the op's signature takes ({', '.join(params)})"
        )
    if not checker.kernels:
        raise StaticCheckError("no @triton.jit kernel: the op must be computed by a Triton kernel")
    launched = checker.launched & set(checker.kernels)
    if not launched:
        raise StaticCheckError(
            f"no launch of a @triton.jit kernel ({', '.join(checker.kernels)}) as kernel[grid](...)"
        )
    return CheckedSource(entry, tuple(checker.kernels))


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}  # local name -> dotted module path (or object path)
        self.kernels: list[str] = []
        self.launched: set[str] = set()
        self.in_kernel = 0

    def fail(self, node: ast.AST, reason: str) -> None:
        raise StaticCheckError(f"line {getattr(node, 'lineno', '?')}: {reason}")

    # Imports.

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in ALLOWED_MODULES:
                self.fail(node, f"import of '{alias.name}' is not allowed "
                                f"(allowed: {', '.join(ALLOWED_MODULES)})")
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                root = alias.name.split(".")[0]
                self.aliases[root] = root

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or module not in ALLOWED_MODULES:
            self.fail(node, f"import from '{'.' * node.level}{module}' is not allowed "
                            f"(allowed: {', '.join(ALLOWED_MODULES)})")
        for alias in node.names:
            if alias.name == "*":
                self.fail(node, f"'from {module} import *' is not allowed")
            path = f"{module}.{alias.name}"
            self._check_path(node, path)
            self.aliases[alias.asname or alias.name] = path

    # Names and attributes.

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_BUILTINS:
            self.fail(node, f"'{node.id}' is not allowed in a kernel")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            self.fail(node, f"attribute '{node.attr}' is not allowed (no private or dunder access)")
        path = self._dotted(node)
        if path is not None:
            self._check_path(node, path)
        if isinstance(node.ctx, (ast.Store, ast.Del)) and self._rooted_in_module(node):
            self.fail(node, f"assigning to module attribute '{path or node.attr}' is not allowed")
        self.generic_visit(node)

    def _dotted(self, node: ast.AST) -> str | None:
        """'torch.cuda.Stream' for an attribute chain rooted at an imported module name."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.aliases:
            return ".".join([self.aliases[node.id], *reversed(parts)])
        return None

    def _rooted_in_module(self, node: ast.AST) -> bool:
        while isinstance(node, ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and node.id in self.aliases

    def _check_path(self, node: ast.AST, path: str) -> None:
        for prefix in FORBIDDEN_TORCH:
            if path == prefix or path.startswith(prefix + "."):
                self.fail(node, f"'{path}' is not allowed in a kernel (files, code loading, "
                                "processes, streams or timers)")
        if not self.in_kernel:
            for prefix in FORBIDDEN_TORCH_COMPUTE:
                if path == prefix or path.startswith(prefix + "."):
                    self.fail(node, f"'{path}' computes on the host with torch: the op must be "
                                    "computed by a Triton kernel")
        parts = path.split(".")
        if parts[0] == "triton" and len(parts) > 1 and parts[1] not in TRITON_ALLOWED:
            self.fail(node, f"'{path}' is not allowed (from triton a kernel may use "
                            f"{', '.join(sorted(TRITON_ALLOWED))})")

    # Statements.

    def visit_Try(self, node: ast.AST) -> None:
        self.fail(node, "try/except is not allowed (it hides a fallback when the kernel fails)")

    visit_TryStar = visit_Try

    def visit_Global(self, node: ast.AST) -> None:
        self.fail(node, "global/nonlocal is not allowed")

    visit_Nonlocal = visit_Global

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        decorators = {self._dotted(_callee(d)) for d in node.decorator_list}
        jit = bool(decorators & JIT_DECORATORS)
        if jit:
            self.kernels.append(node.name)
        self.in_kernel += jit
        self.generic_visit(node)
        self.in_kernel -= jit

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.MatMult) and not self.in_kernel:
            self.fail(node, "'@' computes a matrix product with torch on the host: use tl.dot "
                            "inside a kernel")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Subscript) and isinstance(func.value, ast.Name):
            self.launched.add(func.value.id)  # kernel[grid](...)
        if (not self.in_kernel and isinstance(func, ast.Attribute)
                and func.attr in FORBIDDEN_METHODS):
            self.fail(node, f"'.{func.attr}(...)' computes on the host with torch: the op must "
                            "be computed by a Triton kernel")
        self.generic_visit(node)


def _callee(decorator: ast.AST) -> ast.AST:
    """`triton.jit` for both `@triton.jit` and `@triton.autotune(configs=...)`."""
    return decorator.func if isinstance(decorator, ast.Call) else decorator
