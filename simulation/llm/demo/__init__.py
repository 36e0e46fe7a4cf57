"""The offline demo model: instant, deterministic, persona-flavoured replies with no key and no network.

It lets a newcomer see the whole product work (``make run``) before configuring a real model.
"""

from simulation.llm.demo.model import DEMO_MODEL_NAME, DemoModel

__all__ = ["DEMO_MODEL_NAME", "DemoModel"]
