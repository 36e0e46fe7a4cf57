"""The demo model's answers to research requests: plans, personas, polls, summaries, extraction,
enrichment, story beats and validation, each composed from the request's context by word overlap
and stable hashing, valid for the schema its module asks for."""
