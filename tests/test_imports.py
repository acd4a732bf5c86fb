"""What importing restnetc costs: the device-side binding runs where torch is not installed."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    """Top-level modules loaded by a fresh interpreter after ``statement``."""
    code = f"{statement}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(out.stdout.split())


def test_the_runtime_binding_imports_without_torch() -> None:
    loaded = _modules_after("import restnetc.runtime")
    assert "restnetc" in loaded and not loaded & {"torch", "torchvision", "timm", "executorch", "pydantic"}


def test_the_runtime_binding_and_the_version_work_with_torch_absent() -> None:
    """Where torch cannot be imported at all (a device), ``restnetc`` and ``restnetc.runtime`` still import and
    the API names resolve only when used (a lazy ``restnetc.build`` would fail there, not at import)."""
    _modules_after(
        "import sys\nfor name in ('torch', 'torchvision', 'timm', 'executorch', 'pydantic'):\n"
        "    sys.modules[name] = None  # importing it raises ImportError\n"
        "import restnetc, restnetc.runtime\nassert restnetc.__version__ and restnetc.runtime.Runner\n"
        "assert 'restnetc.api' not in sys.modules"
    )


def test_the_torchvision_fix_runs_before_torchvision_loads() -> None:
    """timm imports torchvision, whose meta registrations need ``torchvision::nms`` (see ``_compat.py``)."""
    loaded = _modules_after("import restnetc\nimport timm\nimport torch\nassert torch.ops.torchvision.nms")
    assert {"timm", "torchvision"} <= loaded


def test_the_model_zoo_registers_into_timm_only_when_asked() -> None:
    check = (
        "import restnetc.models\nimport timm\nfrom restnetc.models.factory import ZOO_PREFIX\n"
        "assert not timm.list_models(ZOO_PREFIX + '*'), 'registered on import'\n"
        "import restnetc.models.zoo as zoo\n"
        "names = timm.list_models(ZOO_PREFIX + '*')\n"
        "assert names and all(hasattr(zoo, n) for n in names), names\n"
    )
    _modules_after(check)  # an assertion error in the fresh interpreter fails the test


def test_without_torch_the_finder_still_answers_for_torchvision() -> None:
    """``restnetc doctor`` asks ``find_spec("torchvision")`` on machines where torch may be missing."""
    _modules_after(
        "import importlib.util, sys\nimport restnetc\nsys.modules['torch'] = None\n"
        "assert importlib.util.find_spec('torchvision') is not None"
    )
