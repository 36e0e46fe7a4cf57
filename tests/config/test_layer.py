"""The settings are the layer everything else reads, so they read nothing of Troupe's own.

Were ``config`` to import the bot, the adapters or the simulation, those would sit below the
settings and above them at once: loading the settings would load the bot, and a change there could
break every reader of a setting.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import ROOT

OTHER_LAYERS = ("bots", "adapters", "simulation")

PROBE = """
import importlib, json, pkgutil, sys
import config
names = ["config"] + [m.name for m in pkgutil.walk_packages(config.__path__, "config.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


def test_config_imports_nothing_from_the_other_layers():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert "config.settings" in report["imported"]
    leaked = [name for name in report["loaded"] if name.split(".")[0] in OTHER_LAYERS]
    assert leaked == [], f"importing config loads {', '.join(leaked)}: move what config needs into config"
