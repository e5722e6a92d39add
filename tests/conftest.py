"""Fixtures shared by every test layer: the real control plane (one per session, started on first use)."""

from support.controlplane import control_plane  # noqa: F401  (a session fixture)
