"""The family contract holds for the whole code base: no import circle among the backend's
modules, and no comparison with a family's identifier outside its own package and the
registry (everything else iterates the registry)."""

import ast
from pathlib import Path

from backend.families.registry import EXTRA_JOBS, FAMILIES

REPO = Path(__file__).resolve().parents[1]
FAMILY_PACKAGES = ("backend/triposr/", "backend/shap_e/", "backend/make_it_3d/", "backend/zero123/",
                   "backend/families/registry.py", "backend/test_models/")
CODE = ("backend", "blender", "operators", "panels", "scripts", "tools", "bench", "__init__.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def backend_modules() -> dict:
    return {module_name(path): path for path in (REPO / "backend").rglob("*.py")}


def imported_modules(name: str, path: Path, modules: dict) -> set:
    """The backend modules `name` imports anywhere in its file (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # `from pkg import module` imports the module, not only pkg
                found.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source)
    return {module for module in found if module in modules and module != name}


def cycles(graph: dict) -> list:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_no_import_circle_among_the_backend_modules():
    modules = backend_modules()
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def family_comparisons(path: Path, identifiers: set) -> list:
    """Lines of `path` that compare something with a family identifier (a string or a name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for operand in operands:
            for leaf in ast.walk(operand):
                named = leaf.id if isinstance(leaf, ast.Name) else leaf.attr if isinstance(leaf, ast.Attribute) else None
                if (isinstance(leaf, ast.Constant) and leaf.value in identifiers) or named in identifiers:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_no_family_comparison_outside_the_family_packages_and_the_registry():
    identifiers = {family.identifier for family in (*FAMILIES, *EXTRA_JOBS)}  # the views job's too
    files = [path for root in CODE for path in ((REPO / root).rglob("*.py") if (REPO / root).is_dir() else [REPO / root])]
    outside = [path for path in files if not str(path.relative_to(REPO)).startswith(FAMILY_PACKAGES)]
    assert len(outside) > 50
    assert [line for path in outside for line in family_comparisons(path, identifiers)] == []


def test_the_comparison_finder_finds_one(tmp_path):
    sample = REPO / "tests" / "data" / "family_comparison_sample.py"
    assert family_comparisons(sample, {"SHAP_E"}) == ["tests/data/family_comparison_sample.py:4",
                                                      "tests/data/family_comparison_sample.py:6"]


def test_an_image_job_carries_a_prompt_only_for_a_family_that_asks_for_one(monkeypatch):
    import dataclasses

    import numpy as np
    import pytest

    from backend.bridge import options, protocol
    from backend.bridge.errors import BadRequest
    from backend.bridge.job_client import generate_request
    from backend.bridge.settings import GenerateSettings

    settings = GenerateSettings(family="SHAP_E")
    with pytest.raises(ValueError, match="exactly one of"):
        generate_request(settings, image_bytes=b"png", prompt="a chair")
    asks = dataclasses.replace(options.FAMILIES_BY_NAME["SHAP_E"], prompt_with_image=True)
    monkeypatch.setitem(options.FAMILIES_BY_NAME, "SHAP_E", asks)
    request = generate_request(settings, image_bytes=b"png", prompt=" a  red chair ")
    assert request.task == "image" and request.prompt == "a red chair"
    with pytest.raises(ValueError, match="Shap-E needs a prompt with the image"):
        generate_request(settings, image_bytes=b"png")
    alone = protocol.Generate(job_id="j1", settings=settings.to_dict(), image_bytes=np.zeros(4, np.uint8))
    with pytest.raises(BadRequest, match="needs a prompt with the image"):
        alone.check()


def two_slot_family(identifier="PAIR", slots=None):
    """A family whose image jobs need two model folders (a views model and a reconstructor,
    say), each recognised by a marker file."""
    from backend.families.contract import Family, ModelSlot, Stage

    def slot(name):
        return ModelSlot(identifier=name, label=f"{name} model", preference=f"{name}_path", hub_repo=f"x/{name}",
                         holds=lambda folder, name=name: (folder / f"{name}.txt").is_file(), check=lambda folder: folder,
                         contents=f"{name}.txt", described=f"a {name} folder", hint="", hub_files=lambda: ([], []))

    return Family(identifier=identifier, label=identifier.title(), description="", tasks=("image",), options=(),
                  slots={"image": slots or (slot("first"), slot("second"))}, stages=(Stage("surface", 1.0),),
                  engine=lambda: None, test_models=lambda *a: {})


def test_a_model_slot_may_serve_several_families_but_not_be_redeclared():
    import dataclasses

    import pytest

    from backend.families.registry import FamilyDeclarationError, _checked

    pair = _checked(two_slot_family(), [])
    sharing = _checked(two_slot_family("SHARING", pair.slots["image"]), [pair])  # the very same slots
    assert sharing.slots["image"] == pair.slots["image"]
    redeclared = dataclasses.replace(pair.slots["image"][0], label="another")
    with pytest.raises(FamilyDeclarationError, match="'first' .* is another family's"):
        _checked(two_slot_family("CLASH", (redeclared,)), [pair])


def test_a_folder_holding_one_model_folder_per_slot_is_that_familys(tmp_path, monkeypatch):
    from backend import model_folder
    from backend.families import registry

    pair = registry._checked(two_slot_family(), [])
    monkeypatch.setattr(registry, "FAMILIES", (*registry.FAMILIES, pair))
    monkeypatch.setitem(registry.FAMILIES_BY_NAME, "PAIR", pair)
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.txt").write_text("x")
    assert (model_folder.detect_family(tmp_path).family, model_folder.detect_family(tmp_path).task) == ("PAIR", "image")
    assert model_folder.resolve_model_folders(tmp_path, "PAIR", "image") == {"first": tmp_path / "first",
                                                                            "second": tmp_path / "second"}
    (tmp_path / "second" / "second.txt").unlink()
    assert model_folder.detect_family(tmp_path).family == "unknown"
