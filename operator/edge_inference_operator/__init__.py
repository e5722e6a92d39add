"""The kopf operator that turns InferenceJobs into DaemonSets (Continuous) or per-node Jobs (Batch).

Layers, imports one way (top to bottom; checked by the import-linter contract in pyproject.toml):
    main        the `edge-inference-operator` console script: settings from env, kopf cluster-wide
    handlers    kopf wiring only: which events call the reconciler; indexes of camera nodes and worker pods
    reconcile   level-based reconcile of one job: check, place, converge children, scrape, write status
    kube | scrape | placement | metrics
                thin Kubernetes I/O (plain dicts, converge on 409); worker /metrics over HTTP;
                node matching; the operator's own Prometheus metrics
    builders | status
                pure: the children's manifests; status, conditions and Events (the policy)
    settings | observed
                the operator's settings from its environment; what is read of pods, Jobs and workers
    names       labels, annotations and child names, defined once
"""
