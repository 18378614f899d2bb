"""The layer map of ``docs/architecture.md``, enforced: every import in ``certstore/``, ``api/`` and ``bench/``
goes down the map (or stays inside its own package), never up or sideways.

The map is data (:data:`LAYERS`, :data:`WITHIN_LAYER`, :data:`ADAPTER_IMPORTS`); ``docs/architecture.md`` draws
the same table and arrows and :func:`test_the_documented_map_is_this_map` keeps the two in step. Every import
counts: module level, inside functions (a lazy import is a dependency all the same), ``from . import x``
(resolved), and a literal ``importlib.import_module("…")``. Imports under ``if TYPE_CHECKING:`` are checked like
any other — an annotation naming a class of an upper layer is a dependency on that layer too. The one arrow
allowed *only* under ``TYPE_CHECKING`` is ``certstore.services`` → ``certstore.app`` (a use case annotates the
application it receives; at run time the composition root imports the services, not the reverse).

The rules:

1. A module imports its own package (the unit of the map, e.g. ``certstore.seal``) and the packages of lower
   layers; another package of its own layer only along an arrow of :data:`WITHIN_LAYER`; never one above.
2. The adapters (layer 5: ``api``, ``certstore.cli``, ``certstore.exchange``, ``bench``) drive the application
   and do not import each other, except ``certstore.cli`` → ``api`` (``certstore serve``), ``certstore.cli`` →
   ``certstore.exchange`` (the exchange commands) and ``bench`` → anything (benchmarks drive every entry point).
3. Nothing below the adapters imports ``api``; nothing imports ``tests``; only ``bench`` imports ``devservers``
   (the throwaway servers the tests and the benchmarks start), and ``devservers`` imports no first-party code.

:data:`KNOWN_VIOLATIONS` lists, with a reason, the imports the code still makes against the map; each entry
must still occur (a stale entry fails too), and the list is to be emptied, not extended.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("certstore", "api", "bench", "devservers")

#: The layer map, lowest first: a unit is a package or module; a module belongs to the longest unit that is a
#: prefix of its dotted name.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundations",
        ("certstore", "certstore.crypto", "certstore.checks", "certstore.timezones", "certstore.messages"),
    ),
    (
        "domain values",
        (
            "certstore.identifiers",
            "certstore.workdays",
            "certstore.lifecycle",
            "certstore.access",
            "certstore.keystore",
            "certstore.tsa",
        ),
    ),
    (
        "documents",
        (
            "certstore.catalogue",
            "certstore.records",
            "certstore.seal",
            "certstore.packaging",
            "certstore.verify",
            "certstore.forms",
        ),
    ),
    ("storage", ("certstore.store", "certstore.audit")),
    ("application", ("certstore.services", "certstore.app")),
    ("adapters", ("api", "certstore.cli", "certstore.exchange", "bench")),
)

ADAPTERS = LAYERS[-1][1]

#: Adapter → adapters it may import besides itself.
ADAPTER_IMPORTS: dict[str, frozenset[str]] = {
    "api": frozenset(),
    "certstore.cli": frozenset({"api", "certstore.exchange"}),
    "certstore.exchange": frozenset(),
    "bench": frozenset(ADAPTERS) | {"devservers"},
}

#: Within a layer, only these arrows (importer unit → imported unit); they form no cycle. "always", or "type
#: checking": allowed only under ``if TYPE_CHECKING:`` (an annotation) — a service names the
#: :class:`~certstore.app.Application` it receives, while at run time ``certstore.app`` imports the services.
WITHIN_LAYER: dict[tuple[str, str], str] = {
    ("certstore.crypto", "certstore.checks"): "always",  # chain validation reports ordered Checks
    ("certstore.messages", "certstore.timezones"): "always",  # translated reasons show Beijing time
    ("certstore.lifecycle", "certstore.workdays"): "always",  # lifecycle deadlines count working days
    ("certstore.tsa", "certstore.keystore"): "always",  # the time-stamp authority's key is in the key store
    ("certstore.records", "certstore.catalogue"): "always",  # a record is validated against its type
    ("certstore.forms", "certstore.catalogue"): "always",  # the import template of a type …
    ("certstore.forms", "certstore.records"): "always",  # … read into drafts
    ("certstore.packaging", "certstore.catalogue"): "always",  # the face layout of a type …
    ("certstore.packaging", "certstore.records"): "always",  # … filled from a prepared version
    ("certstore.packaging", "certstore.seal"): "always",  # an OFD signature embeds the SES seal
    ("certstore.verify", "certstore.packaging"): "always",  # the one OFD reader, the PDF reader
    ("certstore.verify", "certstore.seal"): "always",  # a seal inside a file is verified as a seal
    ("certstore.audit", "certstore.store"): "always",  # the log lives in the repository's database
    ("certstore.app", "certstore.services"): "always",  # the composition root builds on the services
    ("certstore.services", "certstore.app"): "type checking",
}

#: Imports against the map that the code still makes: (importing module, imported module) → why and the fix.
#: The lead empties this list as the owners' changes land; never add to it to make a new import pass.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


def _unit_layers() -> dict[str, int]:
    return {unit: level for level, (_name, units) in enumerate(LAYERS) for unit in units}


UNIT_LAYER = _unit_layers()


def unit_of(module: str) -> str | None:
    """The unit of the map ``module`` belongs to (None: not first-party, e.g. ``sqlalchemy``)."""
    parts = module.split(".")
    for size in range(len(parts), 0, -1):
        candidate = ".".join(parts[:size])
        if candidate in UNIT_LAYER:
            return candidate
    return parts[0] if parts[0] in ("tests", "devservers") else None


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name of the file
    imported: str  # ``from a import b``: ``a.b`` when that is a module, else ``a``
    path: Path
    line: int
    type_checking: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _name(node: ast.expr) -> str:
    """``x`` of ``x`` or of ``something.x``; empty for anything else."""
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _name(node.test) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(n.lineno for n in ast.walk(child) if hasattr(n, "lineno"))
    return lines


def imports_of(path: Path, *, module: str | None = None) -> Iterator[Import]:
    """Every import ``path`` (the module ``module``, by default named after its place in the tree) makes, at any
    depth."""
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    guarded = _type_checking_lines(tree)

    def found(name: str, node: ast.AST) -> Import:
        line = getattr(node, "lineno", 0)
        return Import(module, name, path, line, line in guarded)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield found(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield found(candidate if _is_module(candidate) else base, node)
        elif isinstance(node, ast.Call) and _name(node.func) in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield found(first.value, node)


def source_files() -> list[Path]:
    files: list[Path] = []
    for top in SCANNED:
        files.extend(p for p in sorted((ROOT / top).rglob("*.py")) if "migrations" not in p.parts[:-1])
    return files


def migration_files() -> list[Path]:
    return sorted((ROOT / "certstore" / "store" / "migrations").rglob("*.py"))


def against_the_map(edge: Import) -> str | None:
    """Why ``edge`` goes against the map, or None when it is allowed."""
    source, target = unit_of(edge.importer), unit_of(edge.imported)
    if source is None or target is None or source == target:
        return None
    if target == "tests":
        return "imports the test suite"
    if source == "devservers":
        return f"devservers imports {target}: the throwaway servers stand apart from the application"
    if target == "devservers":
        return None if "devservers" in ADAPTER_IMPORTS.get(source, frozenset()) else "imports devservers"
    if target == "api" and source not in ADAPTERS:
        return f"{source} (below the adapters) imports api"
    low, high = UNIT_LAYER[source], UNIT_LAYER[target]
    if source in ADAPTERS:
        if target in ADAPTERS and target not in ADAPTER_IMPORTS[source]:
            return f"adapter {source} imports adapter {target}"
        return None
    if high > low:
        return f"{source} (layer {low}) imports {target} (layer {high}): up the map"
    if high == low:
        rule = WITHIN_LAYER.get((source, target))
        if rule == "always" or (rule == "type checking" and edge.type_checking):
            return None
        return f"{source} imports {target}, a sibling in layer {low} ({LAYERS[low][0]})"
    return None


def _violations() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for path in [*source_files(), *migration_files()]:
        for edge in imports_of(path):
            reason = against_the_map(edge)
            if reason is not None:
                where = f"{edge.path.relative_to(ROOT)}:{edge.line}"
                tag = " (TYPE_CHECKING)" if edge.type_checking else ""
                found.setdefault((edge.importer, edge.imported), []).append(f"{where}{tag}: {reason}")
    return found


def test_every_first_party_module_is_on_the_map() -> None:
    unplaced = [
        _module_name(p) for p in source_files() if unit_of(_module_name(p)) in (None, "certstore") and
        _module_name(p) != "certstore"
    ]  # fmt: skip
    assert not unplaced, (
        f"modules outside the layer map (add them to LAYERS and docs/architecture.md): {unplaced}"
    )


def test_no_import_goes_against_the_layer_map() -> None:
    violations = _violations()
    new = {edge: where for edge, where in violations.items() if edge not in KNOWN_VIOLATIONS}
    assert not new, "imports against the layer map (docs/architecture.md):\n" + "\n".join(
        line for lines in new.values() for line in lines
    )


def test_the_allow_list_holds_only_violations_that_still_occur() -> None:
    stale = sorted(set(KNOWN_VIOLATIONS) - set(_violations()))
    assert not stale, f"fixed — remove from KNOWN_VIOLATIONS: {stale}"


def test_nothing_below_the_adapters_imports_api() -> None:
    offenders = [
        f"{edge.path.relative_to(ROOT)}:{edge.line} imports {edge.imported}"
        for path in source_files()
        for edge in imports_of(path)
        if unit_of(edge.importer) not in ADAPTERS and unit_of(edge.imported) == "api"
    ]
    assert not offenders


def test_pages_call_services_not_route_functions() -> None:
    """The pages are another face of the use cases, not a client of the routes (issue 14)."""
    offenders = [
        f"{edge.path.relative_to(ROOT)}:{edge.line} imports {edge.imported}"
        for path in sorted((ROOT / "api" / "pages").rglob("*.py"))
        for edge in imports_of(path)
        if edge.imported == "api.routes" or edge.imported.startswith("api.routes.")
    ]
    assert not offenders


# --- the checker checks what it claims -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("certstore.seal.build", "certstore.crypto.sm2", True),  # down the map
        ("certstore.seal.build", "certstore.seal.model", True),  # own package
        ("certstore.seal.build", "certstore.packaging.ofd", False),  # sibling in layer 2
        ("certstore.records", "certstore.store.db", False),  # up
        ("certstore.services.copies", "api.scope", False),  # the core imports api
        ("certstore.store.repository", "api", False),
        ("certstore.exchange.worker", "certstore.services.certificates", True),  # adapter → application
        ("certstore.exchange.worker", "api.security", False),  # adapter → adapter
        ("api.routes.sharing", "certstore.cli.common", False),
        ("certstore.cli.serve", "api.app", True),  # the two allowed adapter edges
        ("certstore.cli.exchange", "certstore.exchange.worker", True),
        ("bench.http", "api.app", True),
        ("bench.imports", "devservers.postgres", True),
        ("bench.imports", "tests.servers.postgres", False),  # the benchmarks run without the test suite
        ("certstore.services.imports", "devservers.postgres", False),
        ("devservers.api", "certstore.cli", False),
        ("certstore.app", "certstore.services.issuance", True),  # the composition root on the services
        ("certstore.services.issuance", "certstore.app", False),  # … not the other way round at run time
        ("certstore.audit.chain", "sqlalchemy", True),  # third party: not on the map
    ],
)
def test_the_rules(importer: str, imported: str, allowed: bool) -> None:
    edge = Import(importer, imported, Path("x.py"), 1, False)
    assert (against_the_map(edge) is None) is allowed


def test_the_arrows_within_layers_stay_within_a_layer_and_form_no_cycle() -> None:
    for source, target in WITHIN_LAYER:
        assert UNIT_LAYER[source] == UNIT_LAYER[target], (source, target)
    graph: dict[str, set[str]] = {}
    for source, target in WITHIN_LAYER:
        graph.setdefault(source, set()).add(target)

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ())
        )

    cycles = [
        (s, t) for (s, t), rule in WITHIN_LAYER.items() if rule == "always" and reaches(t, s)
        and WITHIN_LAYER.get((t, s)) != "type checking"
    ]  # fmt: skip
    assert not cycles


def test_type_checking_imports_follow_the_map_too() -> None:
    def allowed(importer: str, imported: str) -> bool:
        return against_the_map(Import(importer, imported, Path("x.py"), 1, True)) is None

    assert allowed("certstore.services.renditions", "certstore.app")  # the one within-layer annotation edge
    assert not allowed("certstore.records", "certstore.services.calls")
    assert not allowed("certstore.services.copies", "api.app")


def test_imports_inside_functions_relative_and_type_checking_are_found(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import model\n"
        "if TYPE_CHECKING:\n"
        "    from certstore.services.calls import Call\n"
        "def f():\n"
        "    from ..packaging import ofd\n"
        "    import importlib\n"
        "    return importlib.import_module('certstore.store.db')\n",
        encoding="utf-8",
    )
    edges = {(e.imported, e.type_checking) for e in imports_of(path, module="certstore.seal.probe")}
    assert ("certstore.seal.model", False) in edges
    assert ("certstore.services.calls", True) in edges
    assert ("certstore.packaging.ofd", False) in edges
    assert ("certstore.store.db", False) in edges


def test_the_documented_map_is_this_map() -> None:
    """``docs/architecture.md`` draws the same map: one table row per layer (its units in backticks), and one
    ``- `a` → `b``` line per allowed arrow within a layer and between adapters."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\|\s*(\d)\s*\|[^|]*\|([^|]*)\|", text, flags=re.MULTILINE)
    documented = {int(level): tuple(re.findall(r"`([\w.]+)`", units)) for level, units in rows}
    expected = {
        level: tuple(u for u in units if u != "certstore") for level, (_n, units) in enumerate(LAYERS)
    }
    assert documented == expected
    arrows = set(re.findall(r"^- `([\w.]+)` → `([\w.]+)`", text, flags=re.MULTILINE))
    adapter_arrows = {
        (source, target)
        for source, targets in ADAPTER_IMPORTS.items()
        if source != "bench"  # bench → anything, said in words
        for target in targets
    }
    assert arrows == set(WITHIN_LAYER) | adapter_arrows
