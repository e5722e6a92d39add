"""The host-path allow-list attacked with hostile paths: the operator's check, the CRD's own CEL
rules (run by a real API server at `kubectl apply`) and the pydantic model agree; the operator's
behaviour for a few of these paths is in tests/operator/test_operator.py."""

from __future__ import annotations

import pytest
from edge_inference_api.hostpaths import host_path_refusal, normalise_prefixes
from edge_inference_api.models import InputSpec, host_path_problem
from pydantic import ValidationError
from support.admission import apply_job
from support.controlplane import ControlPlane

ALLOWED = ["/video_dir", "/srv/nvr/"]

HOSTILE = [
    "/video_dir/../etc",
    "/video_dir/..",
    "/video_dir/cam/../../etc/shadow",
    "/video_dir/../video_dir/cam",  # resolves back inside, still refused: no '..' at all
    "/video_dir/./cam",
    "/video_dir/.",
    "/video_dir//cam",
    "//video_dir",
    "/video_dir2",  # prefix trick: a sibling, not a child
    "/video_dir2/",
    "/video_dir2/cam",
    "/video_dir_old/cam",
    "/video_di",
    "/video",
    "/VIDEO_DIR/cam",
    "/video_dir\x00/../etc",  # NUL
    "/video_dir/\x00",
    "/video_dir\\..\\etc",  # backslashes are not separators: one odd segment at the root
    "/video_dir%2F..%2Fetc",  # percent-encoding is not decoded: a folder at the root, not under the prefix
    "/video\u2215dir/cam",  # DIVISION SLASH lookalike
    "/vide\u043e_dir/cam",  # Cyrillic o
    "/video_dir\u2024\u2024/etc",  # ONE DOT LEADER lookalikes glued to the prefix
    "/video_dir\n/etc",
    "video_dir",  # relative
    "./video_dir",
    "../video_dir",
    " /video_dir",
    "",
    "/",
    "/etc",
    "/proc/self/root/video_dir",
    "/srv/nvr-backup",
    "/srv",
]

ALLOWED_PATHS = [
    "/video_dir",  # equal to a prefix
    "/video_dir/",
    "/video_dir/cam1",
    "/srv/nvr",  # the prefix was given with a trailing slash
    "/srv/nvr/site-7/cam",
    "/video_dir/...",  # a folder literally named '...': no traversal
    "/video_dir/..cam",
    "/video_dir/.hidden",
    "/video_dir/%2e%2e/etc",  # a folder literally named '%2e%2e' inside the prefix: harmless, kubelet does not decode
    "/video_dir/\u2024\u2024/etc",  # a folder literally named with dot leaders, inside the prefix
]


def test_the_hostile_table_is_big_enough() -> None:
    assert len(HOSTILE) >= 20


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_paths_are_refused(path: str) -> None:
    refusal = host_path_refusal(path, ALLOWED)
    assert refusal is not None
    if host_path_problem(path) is None:  # clean but elsewhere: the message names the allowed prefixes
        assert "allowed prefixes: /video_dir, /srv/nvr" in refusal


@pytest.mark.parametrize("path", ALLOWED_PATHS)
def test_paths_under_an_allowed_prefix_pass(path: str) -> None:
    assert host_path_refusal(path, ALLOWED) is None


def test_an_empty_allow_list_refuses_everything() -> None:
    assert "none" in host_path_refusal("/video_dir", [])


@pytest.mark.parametrize("prefix", ["video", "/video/../etc", "//video", ""])
def test_bad_allowed_prefixes_are_refused_at_start(prefix: str) -> None:
    with pytest.raises(ValueError, match="allowed host path prefix"):
        normalise_prefixes([prefix])


TABLE = HOSTILE + ALLOWED_PATHS


@pytest.mark.parametrize("index", range(len(TABLE)))
def test_the_api_server_refuses_what_the_model_refuses(crd_cluster: ControlPlane, index: int) -> None:
    """The CRD's static rules, run by the API server at `kubectl apply`, refuse exactly what
    host_path_problem refuses, with its words (NUL bytes too: control characters).
    """
    path = TABLE[index]
    result = apply_job(crd_cluster, f"path-{index}", path)
    problem = host_path_problem(path)
    if problem is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0
        assert problem in result.stderr or (path == "" and "should be at least 1 chars long" in result.stderr)


@pytest.mark.parametrize("path", HOSTILE + ALLOWED_PATHS)
def test_the_model_refuses_structurally_bad_paths(path: str) -> None:
    problem = host_path_problem(path)
    if problem is None:
        assert InputSpec(host_path=path).host_path == path
    else:
        with pytest.raises(ValidationError, match=r"host_?[pP]ath"):
            InputSpec(host_path=path)
