"""The wheel builds, installs into a clean virtual environment, and imports."""

import os
import pathlib
import subprocess
import sys
import zipfile

import npnet

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_public_api_names_and_version():
    assert npnet.__version__ == "0.2.0.dev0"
    for name in npnet.__all__:
        assert hasattr(npnet, name), name
    assert (ROOT / "src" / "npnet" / "py.typed").exists()


def test_every_public_name_has_a_docstring():
    import npnet.data
    import npnet.datasets.chinese_mnist

    modules = [npnet, npnet.data, npnet.datasets.chinese_mnist] + [
        getattr(npnet, m) for m in ("layers", "losses", "optimizers", "schedules", "callbacks", "metrics",
                                    "initializers", "saving", "testing", "activations", "utils", "models",
                                    "regularizers", "constraints")] + [npnet.optimizers.schedules]
    missing = []
    for mod in modules:
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if name.startswith("__") or isinstance(obj, (str, dict, int, tuple)):
                continue
            if not (getattr(obj, "__doc__", None) or "").strip():
                missing.append(f"{mod.__name__}.{name}")
    assert not missing, f"public names without a docstring: {missing}"


def test_wheel_installs_into_a_clean_venv(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist), str(ROOT)], check=True)
    wheels = list(dist.glob("npnet-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "npnet/py.typed" in names and "npnet/layers/core.py" in names
    assert not any(n.startswith("tests/") for n in names)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheels[0])], check=True, env=env)
    out = subprocess.run(
        [str(py), "-c", "import npnet, numpy as np; m = npnet.Sequential([npnet.Input(shape=(2,)), npnet.Dense(1)]);"
                        "print(npnet.__version__, m.predict(np.ones((1, 2)), verbose=0).shape, npnet.__file__)"],
        check=True, capture_output=True, text=True, cwd=tmp_path, env=env,
    ).stdout
    assert out.startswith("0.2.0.dev0 (1, 1)")
    assert str(venv) in out
