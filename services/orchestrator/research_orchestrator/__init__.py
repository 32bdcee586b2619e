"""The orchestrator: hosts `DeepResearchWorkflow` and no activities."""
