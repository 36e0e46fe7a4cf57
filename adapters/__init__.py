"""Chat platforms. Each adapter maps a channel to a world and a persona to a bot identity."""
