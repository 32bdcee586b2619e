"""The search worker: hosts `web_search` and `record_audit` on the search task queue."""
