"""The LLM worker: hosts `plan` and `synthesize` on the LLM task queue."""
