"""The search worker: hosts `web_search` on the search task queue."""
