"""The layout holds: the top level is the five scripts, the package's imports form no cycle, no
module reaches into another's private names, and short commands do not import what they don't use."""

import ast
import os
import subprocess
import sys

from conftest import ROOT

SCRIPTS = {"trainSpeakerNet.py", "dataprep.py", "SpeakerNet.py", "DatasetLoader.py", "tuneThreshold.py"}
PACKAGES = ("voxtrainer", "models", "loss", "optimizer", "scheduler", "tools")


def project_modules():
    """{module name: path} of the scripts and of every module in the project's packages."""
    modules = {name[:-3]: os.path.join(ROOT, name) for name in SCRIPTS}
    for package in PACKAGES:
        for folder, _, names in os.walk(os.path.join(ROOT, package)):
            for name in names:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    modules[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return modules


def imports_of(path, modules):
    """(imported project module, names taken from it) for each import statement of a file."""
    found = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name in modules]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
            for alias in node.names:
                submodule = "%s.%s" % (node.module, alias.name)
                found.append((submodule, []) if submodule in modules else (node.module, [alias.name]))
    return found


def test_the_top_level_python_files_are_the_five_scripts():
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert {name for name in tracked if "/" not in name} == SCRIPTS


def test_the_project_imports_form_no_cycle():
    modules = project_modules()
    graph = {name: {target for target, _ in imports_of(path, modules) if target != name}
             for name, path in modules.items()}
    state = {}

    def visit(name, trail):
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", "import cycle: " + " -> ".join(trail + [name])
        state[name] = "open"
        for target in sorted(graph[name]):
            visit(target, trail + [name])
        state[name] = "done"

    for name in sorted(graph):
        visit(name, [])


def test_no_module_imports_a_private_name_of_another():
    modules = project_modules()
    private = ["%s: %s from %s" % (os.path.relpath(path, ROOT), name, target)
               for path in modules.values() for target, names in imports_of(path, modules)
               for name in names if name.startswith("_")]
    assert not private


def test_help_imports_neither_torch_nor_plotting_signal_processing_or_learning_libraries():
    heavy = ["torch", "matplotlib", "scipy.signal", "sklearn", "onnx", "onnxruntime"]
    code = ("import runpy, sys; sys.argv = ['trainSpeakerNet.py', '--help']\n"
            "try:\n    runpy.run_path('trainSpeakerNet.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('LOADED', [name for name in %r if name in sys.modules])" % heavy)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[-1] == "LOADED []", result.stdout[-500:] + result.stderr
