"""The LLM worker: hosts `triage`, `clarify`, `plan`, `reflect`, `synthesize`, `review` and
`revise` on the LLM task queue."""
