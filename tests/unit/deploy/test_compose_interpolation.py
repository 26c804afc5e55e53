"""The compose reader the deploy tests rely on: Compose's interpolation rules and tags."""

import pytest

from tests.helpers.compose_file import InterpolationError, interpolate, load_compose, read_env_file


@pytest.mark.parametrize("text, env, expected", [
    ("${A}", {"A": "1"}, "1"),
    ("$A-x", {"A": "1"}, "1-x"),
    ("${A}", {}, ""),
    ("${A:-d}", {"A": ""}, "d"),
    ("${A-d}", {"A": ""}, ""),
    ("${A-d}", {}, "d"),
    ("${A:+alt}", {"A": "1"}, "alt"),
    ("${A:+alt}", {}, ""),
    ("${A:-${B:-z}}", {}, "z"),
    ("${A:-${B}}", {"B": "b"}, "b"),
    ("$$HOME and $${X}", {"HOME": "h"}, "$HOME and ${X}"),
    ("redis://redis:6379/0", {}, "redis://redis:6379/0"),
])
def test_interpolate(text, env, expected):
    assert interpolate(text, env) == expected


def test_required_variables():
    assert interpolate("${A:?set A}", {"A": "x"}) == "x"
    with pytest.raises(InterpolationError, match="required variable A is missing a value: set A"):
        interpolate("${A:?set A}", {"A": ""})
    assert interpolate("${A?set A}", {"A": ""}) == ""
    with pytest.raises(InterpolationError):
        interpolate("${A?set A}", {})
    with pytest.raises(InterpolationError, match="invalid"):
        interpolate("${A B}", {})


def test_env_file_and_override_tags(tmp_path):
    (tmp_path / ".env").write_text("# comment\nA=1\nB='two words'\n\nC=\n")
    assert read_env_file(tmp_path / ".env") == {"A": "1", "B": "two words", "C": ""}
    (tmp_path / "c.yaml").write_text("x: &x\n  a: ${A}\nservices:\n  s:\n    <<: *x\n    l: !override [1, 2]\n"
                                     "    r: !reset null\n")
    assert load_compose(tmp_path / "c.yaml", {"A": "v"}) == {"x": {"a": "v"}, "services": {"s": {"a": "v", "l": [1, 2], "r": None}}}
