import json
import math

from accord.cli.output import dumps


def test_non_finite_numbers_become_null_and_the_output_is_strict_json():
    text = dumps(
        {"auc": math.nan, "sites": [{"loss": math.inf}, {"n": 3.0}], "t": (1.5,)}
    )
    assert json.loads(text) == {
        "auc": None,
        "sites": [{"loss": None}, {"n": 3.0}],
        "t": [1.5],
    }
    assert "NaN" not in text and "Infinity" not in text
