"""The kopf operator that turns InferenceJobs into DaemonSets (Continuous) or per-node Jobs (Batch).

Layers, imports one way (top to bottom):
    main        the `edge-inference-operator` console script: settings from env, kopf cluster-wide
    handlers    kopf wiring only: which events call the reconciler; indexes of camera nodes and worker pods
    reconcile   level-based reconcile of one job: check, place, converge children, scrape, write status
    kube        thin Kubernetes I/O (official client transport, plain dicts, converge on 409)
    scrape      worker /metrics over HTTP (aiohttp) into per-node progress
    metrics     the operator's own Prometheus metrics
    builders, placement, status, settings
                pure: manifests, node matching, status and conditions, env settings
"""
