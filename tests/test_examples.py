"""The small examples run and reach what they claim."""

import pathlib
import runpy

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_custom_layer_example(capsys):
    module = runpy.run_path(str(EXAMPLES / "custom_layer.py"))
    acc = module["main"]()
    out = capsys.readouterr().out
    assert "gradient check of Scale" in out and "PASSED" in out
    assert acc >= 0.95
