"""docs/adding-a-method.md: its worked example (a new method, its name, attach, a plain loop) runs as written.

The page's blocks run in order in one namespace; the method they register is removed afterwards, so
no other test sees it.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from iadet.config.methods import METHOD_PRESETS

PAGE = Path(__file__).resolve().parents[1] / "docs" / "adding-a-method.md"


def test_the_worked_example_runs(clean_registry, capsys, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 4
    module = types.ModuleType("channel_dropout_example")  # a module of the user's own
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    for i, code in enumerate(blocks):
        exec(compile(code, f"{PAGE.name} example {i + 1}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "channel_dropped" in printed and "method.drop must be in [0, 1), got 1.5" in printed
    method = namespace["method"]
    assert method.iteration == 2 and 0.0 < method.statistics()["channel_dropped"] < 1.0
    assert METHOD_PRESETS["channel-dropout-half"].defaults == {"drop": 0.5}
