"""Scale-out proof: workers on a three-node RabbitMQ cluster survive losing a node.

Starts a throw-away cluster beside the default broker, runs two worker processes through a
TCP balancer that fails over between nodes (as HAProxy does in deploy/), stops the node that
leads the quorum queues mid-run, and checks: 0 lost, 0 double-charged.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosRun, assert_invariants
from tests.support.broker import in_ci
from tests.support.cluster import Cluster, rabbitmqctl
from tests.support.proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.chaos]


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("rabbitmq-server") is None or os.geteuid() != 0:
        if in_ci():
            pytest.fail("the cluster test needs rabbitmq-server and root (CI=true: never skipped)")
        pytest.skip("needs a local rabbitmq-server installation and root")
    started = Cluster(3)
    try:
        started.start()
        yield started
    finally:
        started.close()


async def test_losing_the_leader_node_loses_and_double_charges_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Stopping the quorum leader's node mid-run: workers fail over, every payment settles."""
    first, *others = cluster.nodes
    balancer = TcpProxy("127.0.0.1", first.port, fallbacks=[("127.0.0.1", n.port) for n in others])
    await balancer.start()
    run = ChaosRun(
        balancer.url(),
        f"sqlite:///{tmp_path / 'cluster.db'}",
        tmp_path,
        rabbitmq_node=others[-1].name,
        observer_url=others[-1].amqp_url,
    )
    try:
        await run.open(failure_rate=0.1, latency=0.002)
        await run.start_worker(0)
        await run.start_worker(1)
        await run.publish(1500, malformed=20)
        await balancer.wait_live()
        while await run.final_count() < 300:  # stop the node once work is well under way
            await asyncio.sleep(0.2)
        await asyncio.to_thread(rabbitmqctl, first.name, "stop_app")
        run.faults["cluster node stopped (quorum leader)"] += 1
        balancer.cut()  # its clients notice at once, as with a dead host behind a balancer
        drain = await run.settle(timeout=300)
        report = await run.verify(drain)
        print("\n" + report.table())
        assert_invariants(report, run)
        status = cluster.running_nodes()
        assert first.name not in status.split("Running Nodes")[1].split("Versions")[0]
    finally:
        await run.close()
        await balancer.close()
