"""The drill's command line (harness/drill_options.py) is built without the scenarios:
its names must be theirs, in their order."""

from __future__ import annotations

import subprocess
import sys

from harness.drill_options import NAMES, SCENARIO_NAMES
from harness.scenarios import NAMES as SCENARIOS_NAMES
from harness.scenarios import SCENARIOS


def test_the_command_line_names_the_scenarios_in_their_order() -> None:
    assert tuple(SCENARIOS) == SCENARIO_NAMES
    assert NAMES == SCENARIOS_NAMES


def test_building_the_cli_parser_loads_neither_the_rig_nor_dnspython() -> None:
    probe = (
        "import sys\n"
        "from eyetok.cli import _parser\n"
        "_parser().parse_args(['drill', 'run', 'dst-edge', '--break', 'clock'])\n"
        "print(' '.join(m for m in ('harness.rig', 'harness.run', 'dns') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""
