from support.kube_emulator import kube_api  # noqa: F401
