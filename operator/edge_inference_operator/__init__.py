"""The kopf operator that turns InferenceJobs into DaemonSets (Continuous) or per-node Jobs (Batch)."""
