from research_cli.main import entrypoint

entrypoint()
