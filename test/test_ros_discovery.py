"""Discovery as ROS 2 Jazzy configures it (issue 20): the ranges, static peers, and real peers in each range.

The Cyclone DDS XML of each range is compared with rmw_cyclonedds' (Jazzy `check_create_domain`),
written out here from its source. Then a peer process configured with exactly that XML, as a
Jazzy node in the range would be, must receive what an embedded node in the same range publishes.
"""

import os
import subprocess
import sys
import time

import pytest
from ros_helpers import DEADLINE_S, ROOT, ros_domain, spin_until  # noqa: F401

from tdm_control.config import ConfigError
from tdm_control.ros import messages as m
from tdm_control.ros.discovery import discovery_settings
from tdm_control.ros.embedded import EmbeddedNode
from tdm_control.ros.transport import COMMANDS

PID = os.getpid()
# rmw_cyclonedds (Jazzy), check_create_domain: the fragment of each range, then ',' and CYCLONEDDS_URI.
RMW_XML = {
    "SUBNET": "<CycloneDDS><Domain><Discovery><ParticipantIndex>auto</ParticipantIndex>"
              "<MaxAutoParticipantIndex>32</MaxAutoParticipantIndex></Discovery></Domain></CycloneDDS>,",
    "LOCALHOST": "<CycloneDDS><Domain><General><AllowMulticast>false</AllowMulticast></General><Discovery>"
                 "<ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>"
                 '<Peers><Peer address="localhost"/></Peers></Discovery></Domain></CycloneDDS>,',
    "OFF": "<CycloneDDS><Domain><General><AllowMulticast>false</AllowMulticast></General><Discovery>"
           f"<ParticipantIndex>none</ParticipantIndex><Tag>ros_discovery_off_{PID}</Tag></Discovery>"
           "</Domain></CycloneDDS>,",
}


def settings(**environ):
    return discovery_settings(environ)


def test_each_range_gives_rmw_cyclonedds_configuration():
    assert settings().range == "SUBNET" and settings().config == RMW_XML["SUBNET"]  # unset: Jazzy's default
    for range_, xml in RMW_XML.items():
        found = settings(ROS_AUTOMATIC_DISCOVERY_RANGE=range_)
        assert (found.range, found.config, found.warnings) == (range_, xml, ())
    system = settings(ROS_AUTOMATIC_DISCOVERY_RANGE="SYSTEM_DEFAULT")
    assert system.config is None  # Cyclone DDS's defaults (and CYCLONEDDS_URI, read by Cyclone itself)
    assert settings(ROS_DOMAIN_ID="7", ROS_AUTOMATIC_DISCOVERY_RANGE="OFF").domain_id == 7


def test_static_peers_join_the_subnet_and_localhost_ranges_only():
    peers = "192.168.1.20;robot.local; ;" + "x" * 256
    subnet = settings(ROS_STATIC_PEERS=peers)
    assert subnet.static_peers == ("192.168.1.20", "robot.local") and "longer than 255" in subnet.warnings[0]
    assert subnet.config == RMW_XML["SUBNET"].replace(
        "</Discovery>", '<Peers><Peer address="192.168.1.20"/><Peer address="robot.local"/></Peers></Discovery>')
    local = settings(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_STATIC_PEERS="10.0.0.2")
    assert '<Peer address="localhost"/><Peer address="10.0.0.2"/>' in local.config
    for range_ in ("OFF", "SYSTEM_DEFAULT"):
        found = settings(ROS_AUTOMATIC_DISCOVERY_RANGE=range_, ROS_STATIC_PEERS="10.0.0.2")
        assert found.static_peers == () and "ignored" in found.warnings[0] and "10.0.0.2" not in (found.config or "")


def test_other_settings_as_rcl_reads_them():
    bad = settings(ROS_AUTOMATIC_DISCOVERY_RANGE="localhost")  # rcl compares exactly: an invalid value
    assert bad.range == "LOCALHOST" and "invalid value 'localhost'" in bad.warnings[0]
    deprecated = settings(ROS_LOCALHOST_ONLY="1", ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET", ROS_STATIC_PEERS="10.0.0.2")
    assert (deprecated.range, deprecated.static_peers) == ("LOCALHOST", ()) and "deprecated" in deprecated.warnings[0]
    assert settings(CYCLONEDDS_URI="file:///etc/c.xml").config == RMW_XML["SUBNET"] + "file:///etc/c.xml"
    humble = settings(ROS_DISTRO="humble", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    assert (humble.distro, humble.range, humble.config) == ("humble", "SUBNET", None)  # Humble has no ranges
    humble_local = settings(ROS_DISTRO="humble", ROS_LOCALHOST_ONLY="1")
    assert humble_local.config.startswith('<CycloneDDS><Domain><General><Interfaces><NetworkInterface '
                                          'address="127.0.0.1"/>')
    with pytest.raises(ConfigError, match="ROS_DOMAIN_ID"):
        settings(ROS_DOMAIN_ID="233")


PEER = """
import dataclasses, sys
from cyclonedds.core import Policy, Qos
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

@dataclasses.dataclass
class Float64_(IdlStruct, typename="std_msgs::msg::dds_::Float64_"):
    data: t.float64

domain = Domain(int(sys.argv[1]), sys.argv[2])
participant = DomainParticipant(int(sys.argv[1]))
reader = DataReader(participant, Topic(participant, "rt/discovery_probe", Float64_),
                    Qos(Policy.Reliability.Reliable(duration(milliseconds=100)), Policy.History.KeepLast(10)))
print("ready", flush=True)
for sample in reader.take_iter(timeout=duration(seconds=float(sys.argv[3]))):
    print("received", sample.data, flush=True)
    break
"""


@pytest.mark.parametrize("range_", [pytest.param("SUBNET", marks=pytest.mark.skipif(
    os.environ.get("TDM_TEST_SUBNET") != "1",
    reason="multicasts on the network: run with TDM_TEST_SUBNET=1 where that is allowed")), "LOCALHOST"])
def test_a_jazzy_peer_in_the_same_range_receives_an_embedded_node(range_, ros_domain, monkeypatch):  # noqa: F811
    """The peer is a Cyclone DDS participant configured with rmw_cyclonedds' XML for the range, as a ROS 2 Jazzy
    node with ROS_AUTOMATIC_DISCOVERY_RANGE=<range> on this machine is; SUBNET is Jazzy's default."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", range_)
    peer = subprocess.Popen([sys.executable, "-c", PEER, str(ros_domain), RMW_XML[range_], str(DEADLINE_S)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = EmbeddedNode("discovery_probe", [])
    try:
        assert f"discovery range {range_}" in node.describe_transport()
        publisher = node.create_publisher(m.Float64, "/discovery_probe", COMMANDS)
        spin_until(node, lambda: publisher.subscription_count > 0, what=f"the {range_} peer's reader")
        deadline = time.monotonic() + DEADLINE_S
        while peer.poll() is None and time.monotonic() < deadline:
            publisher.publish(m.Float64(data=0.25))
            node.spin_once(0.05)
        output = peer.communicate(timeout=DEADLINE_S)[0]
        assert "received 0.25" in output, output
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait()
        node.close()
