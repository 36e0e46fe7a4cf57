"""Settings, bundled personas and scenarios, platform manifests."""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
PERSONAS_DIR = CONFIG_DIR / "personas"
SCENARIOS_DIR = CONFIG_DIR / "scenarios"
