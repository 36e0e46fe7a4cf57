"""The simulation: personas, their minds, and the worlds they talk in."""
