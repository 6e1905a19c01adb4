"""The house rules of the code, checked on the tree: the script is a parser and a dispatch, every
module and function stays short enough to read on a screen, the library's sub-packages say what
they are, and no module of the project imports itself back through another or reaches for a
private name of another."""

import ast
import glob
import os

import pytest

from conftest import ROOT

LIBRARY = [path for folder in ("voxtrainer", "models", "loss", "optimizer", "scheduler")
           for path in glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True)]
SCRIPTS = [os.path.join(ROOT, name) for name in ("trainSpeakerNet.py", "dataprep.py", "SpeakerNet.py",
                                                  "DatasetLoader.py", "tuneThreshold.py")]


def relative(path):
    return os.path.relpath(path, ROOT)


def test_the_training_script_is_a_parser_and_a_dispatch():
    assert sum(1 for _ in open(os.path.join(ROOT, "trainSpeakerNet.py"))) <= 150


@pytest.mark.parametrize("path", LIBRARY + SCRIPTS, ids=relative)
def test_modules_and_functions_are_short(path):
    source = open(path, encoding="utf-8").read()
    assert source.count("\n") <= 400
    long = ["%s (%d lines)" % (node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60]
    assert not long


@pytest.mark.parametrize("package", sorted(glob.glob(os.path.join(ROOT, "voxtrainer", "*", "__init__.py"))),
                         ids=relative)
def test_every_sub_package_opens_with_what_it_is(package):
    docstring = ast.get_docstring(ast.parse(open(package, encoding="utf-8").read()))
    assert docstring and len(docstring.split()) >= 20


def module_imports():
    """{module: set of project modules it imports} over the library and the scripts."""
    names = {relative(path)[:-3].replace(os.sep, ".").removesuffix(".__init__"): path for path in LIBRARY + SCRIPTS}
    graph, private = {}, []
    for module, path in names.items():
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for alias in node.names:
                    target = base + "." + alias.name if base + "." + alias.name in names else base
                    if target in names and target != module:
                        found.add(target)
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            private.append("%s imports %s from %s" % (module, alias.name, target))
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name in names and alias.name != module}
        graph[module] = found
    return graph, private


def test_no_import_cycles_and_no_private_imports():
    graph, private = module_imports()
    assert not private
    state = {}

    def visit(module, trail):
        state[module] = "open"
        for target in graph.get(module, ()):
            assert state.get(target) != "open", "import cycle: " + " -> ".join(trail + [target])
            if target not in state:
                visit(target, trail + [target])
        state[module] = "done"
    for module in graph:
        if module not in state:
            visit(module, [module])
