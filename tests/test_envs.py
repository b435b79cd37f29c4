"""Every rule names a conda env that exists, parses, is pinned and lists what the rule imports.

The environments cannot be built here (no conda channels), so this checks them statically:
the `python -m fesr.<module>` commands of each rule are followed through their `fesr` imports
(including module names written as strings, which the model registry imports lazily), and
every third-party top-level import must be provided by a package of the rule's environment.
"""

import ast
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from workflow_rules import load_rules

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ENVS = ROOT / "envs"

# import name -> conda-forge packages that provide it (default: the lower-cased import name)
PROVIDERS = {
    "torch": {"pytorch", "pytorch-gpu", "pytorch-cpu"},
    "yaml": {"pyyaml"},
    "netCDF4": {"netcdf4"},
    "cftime": {"cftime", "netcdf4"},
    "skimage": {"scikit-image"},
    "sklearn": {"scikit-learn"},
    "PIL": {"pillow"},
    "matplotlib": {"matplotlib", "matplotlib-base"},
    "mpl_toolkits": {"matplotlib", "matplotlib-base"},
    "dolfinx": {"fenics-dolfinx"},
    "ufl": {"fenics-ufl", "fenics-dolfinx"},
    "basix": {"fenics-basix", "fenics-dolfinx"},
    "ffcx": {"fenics-ffcx", "fenics-dolfinx"},
    "huggingface_hub": {"huggingface_hub", "diffusers"},
}
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)\s*(==|=)\s*[0-9][^\s]*$")  # name=version
MODULE_IN_SHELL = re.compile(r"-m\s+(fesr(?:\.[A-Za-z_]\w*)+)")


def env_files():
    return sorted(ENVS.glob("*.yaml"))


@cache
def env_packages(path: Path) -> frozenset:
    spec = yaml.safe_load(path.read_text())
    names = set()
    for dep in spec.get("dependencies", []):
        if isinstance(dep, str):
            names.add(re.split(r"[=<>~ ]", dep, maxsplit=1)[0].split("::")[-1].lower())
    return frozenset(names)


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _optional(node: ast.Try) -> bool:
    """A try block whose handlers catch ImportError: its imports are optional."""
    for handler in node.handlers:
        names = []
        if isinstance(handler.type, ast.Name):
            names = [handler.type.id]
        elif isinstance(handler.type, ast.Tuple):
            names = [e.id for e in handler.type.elts if isinstance(e, ast.Name)]
        if {"ImportError", "ModuleNotFoundError"} & set(names):
            return True
    return False


def _imports(path: Path, module: str) -> tuple[set, set]:
    """(fesr modules, third-party top-level names) that a module imports unconditionally."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    optional_nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and _optional(node):
            for inner in node.body:
                optional_nodes.update(id(n) for n in ast.walk(inner))
    ours, theirs = set(), set()

    def add(name: str):
        if name.split(".")[0] == "fesr":
            ours.add(name)
        elif name.split(".")[0] not in sys.stdlib_module_names and name != "__future__":
            theirs.add(name.split(".")[0])

    for node in ast.walk(tree):
        if id(node) in optional_nodes:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module
            add(name)
            if name.split(".")[0] == "fesr":
                for alias in node.names:  # `from fesr.models import liif` names a module
                    if module_file(f"{name}.{alias.name}"):
                        ours.add(f"{name}.{alias.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"fesr(\.\w+)+", node.value) and module_file(node.value):
                ours.add(node.value)  # lazily imported by name (importlib)
    return ours, theirs


def third_party_imports(entry: str, script: Path | None = None) -> dict[str, str]:
    """Third-party top-level import -> the module that imports it, following fesr imports.

    `entry` is a module run with `python -m`, or a label for `script` (a Snakemake script file).
    """
    found, seen, todo = {}, set(), [entry]
    if script is not None:
        ours, theirs = _imports(script, "fesr_script")
        found.update((top, entry) for top in theirs)
        todo = list(ours)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        # importing a.b.c runs a/__init__, a/b/__init__ too
        for i in range(1, len(parts) + 1):
            mod = ".".join(parts[:i])
            if mod in seen:
                continue
            path = module_file(mod)
            if path is None:
                continue
            seen.add(mod)
            ours, theirs = _imports(path, mod)
            for top in theirs:
                found.setdefault(top, mod)
            todo.extend(ours)
    found.pop("snakemake", None)  # a Snakemake script's `snakemake` object is injected
    return found


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def test_env_files_exist():
    names = {p.stem for p in env_files()}
    assert {"fem", "torch", "report"} <= names, f"envs/ has {sorted(names)}"


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_env_file_parses_and_is_pinned(path):
    spec = yaml.safe_load(path.read_text())
    assert isinstance(spec, dict), f"{path.name}: not a mapping"
    assert spec.get("channels") == ["conda-forge", "nodefaults"], (
        f"{path.name}: channels are {spec.get('channels')}, expected [conda-forge, nodefaults]"
    )
    deps = spec.get("dependencies")
    assert deps, f"{path.name}: no dependencies"
    for dep in deps:
        assert isinstance(dep, str), f"{path.name}: unexpected entry {dep!r} (no pip sections)"
        assert PIN.match(dep), f"{path.name}: {dep!r} has no pinned version (expected name=version)"
    assert any(d.startswith("python=") for d in deps), f"{path.name}: python version not pinned"


def test_every_rule_has_an_existing_env(rules):
    problems = []
    for name, rule in rules.items():
        if not rule["runs_code"]:
            continue
        if not rule["conda"]:
            problems.append(f"rule {name} has no `conda:` env (ENV_FEM, ENV_TORCH or ENV_REPORT)")
            continue
        path = Path(rule["conda"])
        if not path.is_file() or path.parent != ENVS:
            problems.append(f"rule {name}: conda env {path} is not one of envs/*.yaml")
    assert not problems, "\n".join(problems)


def _entries(rule: dict):
    """(label, script path or None) for what a rule runs: `python -m fesr.x` and `script:`."""
    for module in MODULE_IN_SHELL.findall(rule["shell"] or ""):
        yield module, None
    if rule["script"] and rule["script"].endswith(".py"):
        yield Path(rule["script"]).name, Path(rule["script"])


def test_rule_imports_are_in_its_env(rules):
    problems = []
    checked = 0
    for name, rule in rules.items():
        if not rule["runs_code"] or not rule["conda"]:
            continue
        packages = env_packages(Path(rule["conda"]))
        for entry, script in _entries(rule):
            if script is None:
                assert module_file(entry), f"rule {name} runs `python -m {entry}`: no such module"
            else:
                assert script.is_file(), f"rule {name}: script {script} does not exist"
            checked += 1
            for top, via in sorted(third_party_imports(entry, script).items()):
                wanted = PROVIDERS.get(top, {top.lower()})
                if not wanted & packages:
                    problems.append(
                        f"rule {name}: {entry} imports {top!r} (via {via}), but "
                        f"{Path(rule['conda']).name} lists none of {sorted(wanted)}"
                    )
    assert not problems, "\n".join(problems)
    if not checked:
        pytest.skip("no rule with a conda env runs fesr code yet")


def test_import_tracing_finds_known_imports():
    """The tracer itself: fesr.train needs torch and follows the registry's lazy imports."""
    found = third_party_imports("fesr.train") if module_file("fesr.train") else {}
    if not found:
        pytest.skip("fesr.train not written yet")
    assert "torch" in found
    assert "yaml" not in found or found["yaml"].startswith("fesr")
