"""The InferenceJob contract shared by the operator and the worker (pure logic, no I/O)."""
