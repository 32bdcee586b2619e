"""The HTTP API of deep-research and its web page: FastAPI over `ResearchClient`."""
