"""The matcher's narrow store: matching/ reaches the records store only through `MatchingStore`."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import telehealth.matching
from telehealth.matching.store import MatchingStore
from telehealth.records.store import Store

MATCHING = Path(telehealth.matching.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_matching_imports_no_store() -> None:
    modules = sorted(MATCHING.glob("*.py"))
    assert modules
    for path in modules:
        reached = {m for m in _imports(path) if m.startswith("telehealth.records")}
        assert reached <= {"telehealth.records.models"}, (path.name, reached)


def test_the_records_store_offers_every_method_the_matcher_asks_for() -> None:
    wanted = [name for name, member in vars(MatchingStore).items()
              if inspect.iscoroutinefunction(member) and not name.startswith("_")]
    assert "transition_consultation" in wanted
    for name in wanted:
        offered = inspect.signature(getattr(Store, name)).parameters
        for param in inspect.signature(getattr(MatchingStore, name)).parameters.values():
            assert param.name in offered, (name, param.name)
            assert offered[param.name].kind is param.kind, (name, param.name)
            if param.default is inspect.Parameter.empty:
                continue
            assert offered[param.name].default is not inspect.Parameter.empty, (name, param.name)
