"""``FLAG_CONSOLE_INCIDENTS``: off unless said on; a value that is neither is refused."""

from __future__ import annotations

import pytest

from eyetok.config import load_settings
from eyetok.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "on"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("off", False),
        ("1", True),
        ("true", True),
        ("ON", True),
    ],
)
def test_the_flag_reads_on_and_off(value: str | None, on: bool) -> None:
    env = {} if value is None else {"FLAG_CONSOLE_INCIDENTS": value}
    assert load_settings(env).console_incidents is on


def test_a_value_that_is_not_a_flag_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"FLAG_CONSOLE_INCIDENTS": "maybe"})
    assert caught.value.field == "FLAG_CONSOLE_INCIDENTS"
