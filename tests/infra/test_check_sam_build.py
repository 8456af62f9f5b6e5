"""scripts/check_sam_build.py compile/layout: the project's own code ships as bytecode.

Lambda's code and layers are read-only, so modules without a pyc are compiled from source
at every cold start; `compile` writes unchecked-hash pycs into the build and `layout`
refuses a build where one is missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import sam_template as sam

ROOT = Path(__file__).resolve().parents[2]

TEMPLATE = """\
Resources:
  CoreLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: CoreLayer
  HookFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: HookFunction
      Handler: app.handler
      Layers:
        - !Ref CoreLayer
"""


def _script() -> ModuleType:
    return sam.script_module("check_sam_build")


@pytest.fixture
def build(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    core = tmp_path / "CoreLayer" / "python" / "algotrendy"
    (core / "domain").mkdir(parents=True)
    (core / "__init__.py").write_text('"""core"""\n')
    (core / "domain" / "__init__.py").write_text("")
    (core / "domain" / "orders.py").write_text("SIDE = 'buy'\n")
    (tmp_path / "HookFunction").mkdir()
    (tmp_path / "HookFunction" / "app.py").write_text(
        "def handler(event, context):\n    return 1\n"
    )
    return tmp_path


def _pyc(source: Path) -> Path:
    return source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"


def test_compile_writes_unchecked_hash_pycs_and_layout_accepts_the_build(build: Path) -> None:
    script = _script()
    assert script.check_layout(build)[-1].startswith("4 module(s) of the project's own code")
    assert script.compile_own_code(build) == []
    sources = [*build.joinpath("CoreLayer").rglob("*.py"), build / "HookFunction" / "app.py"]
    assert len(sources) == 4
    for source in sources:
        header = _pyc(source).read_bytes()[:8]
        assert header[:4] == importlib.util.MAGIC_NUMBER  # this (3.11) interpreter's
        assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, not checked
    assert script.check_layout(build) == []


def test_layout_names_a_module_left_without_bytecode(build: Path) -> None:
    script = _script()
    assert script.compile_own_code(build) == []
    _pyc(build / "CoreLayer" / "python" / "algotrendy" / "domain" / "orders.py").unlink()
    problems = script.check_layout(build)
    assert len(problems) == 1
    assert problems[0].startswith("1 module(s) of the project's own code without cpython-311")
    assert "domain/orders.py" in problems[0]


def test_compile_refuses_another_python_than_the_runtime(
    build: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _script()
    monkeypatch.setattr(script, "RUNTIME_PYTHON", (3, 12))
    problems = script.compile_own_code(build)
    assert len(problems) == 1
    assert "needs Python 3.12" in problems[0]
    assert not list(build.rglob("*.pyc"))
