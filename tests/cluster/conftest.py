"""The cluster tests run only under `make cluster-test` (root, ODDASR_CLUSTER_TEST=1): they
build network namespaces and firewall rules, which the ordinary suite must never do."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import netns
from tests.cluster.bed import Cluster

ENABLED = os.environ.get("ODDASR_CLUSTER_TEST") == "1"

#: What each fault measured, printed at the end of the run (`make cluster-test` shows it).
FIGURES: list[tuple[str, str]] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="the cluster tests run under `make cluster-test` (ODDASR_CLUSTER_TEST=1, root)")
    for item in items:
        if "tests/cluster/" in str(item.fspath).replace(os.sep, "/") and (not ENABLED or os.geteuid() != 0):
            item.add_marker(skip)


def record(name: str, value: str) -> None:
    FIGURES.append((name, value))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    if not FIGURES:
        return
    terminalreporter.section("cluster figures")
    for name, value in FIGURES:
        terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def cluster(speech_dir: Path) -> Iterator[Cluster]:
    from tests.cluster.load import SteadyLoad
    from tests.support.speech import REFERENCE_SENTENCES, make_long_recording

    root = Path(tempfile.mkdtemp(prefix=netns.RUN_DIR_PREFIX))
    bed = Cluster(root)
    load: SteadyLoad | None = None
    try:
        bed.build_network()
        bed.start_infra()
        bed.start_oddasr()
        netns.enter_for_good("client")  # from here on the test speaks as the client host
        load = SteadyLoad(bed, make_long_recording(REFERENCE_SENTENCES[:1], speech_dir / "cluster-load.wav"))
        load.start()
        yield bed
        counts = load.finish()
        record("steady load (a job every 4 s through both APIs, all faults)", str(counts))
        assert counts["lost"] == 0 and counts["failed"] == 0, counts
    finally:
        bed.teardown()
        assert not netns.leftovers(), netns.leftovers()
