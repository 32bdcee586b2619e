"""The contract between the research services: models, queues, retry presets, activity stubs,
settings, and the logging and metrics helpers every worker uses."""
