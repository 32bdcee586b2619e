"""The LLM worker: hosts `triage`, `clarify`, `plan` and `synthesize` on the LLM task queue."""
