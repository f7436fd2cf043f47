"""Where the embedded transport looks for other nodes: the Cyclone DDS configuration ROS 2 would use.

ROS 2 Jazzy decides discovery from two environment variables (rcl `discovery_options.c`,
applied by rmw_cyclonedds `check_create_domain`), and this module builds the same Cyclone
DDS configuration from them, so an embedded node finds, and is found by, exactly the ROS 2
nodes a Jazzy node with the same environment would:

| ROS_AUTOMATIC_DISCOVERY_RANGE | Cyclone DDS configuration (rmw_cyclonedds, Jazzy) |
|---|---|
| unset, empty, `SUBNET` (default) | multicast; ParticipantIndex auto (at most 32); ROS_STATIC_PEERS as peers |
| `LOCALHOST` | AllowMulticast false; ParticipantIndex auto (at most 32); peers `localhost` + ROS_STATIC_PEERS |
| `OFF` | AllowMulticast false; ParticipantIndex none; a Tag of this process alone: no process is found |
| `SYSTEM_DEFAULT` | Cyclone DDS's own defaults (ROS_STATIC_PEERS ignored) |
| anything else | warned about, then `LOCALHOST` (as rcl does) |

`ROS_STATIC_PEERS` is a ';'-separated list of addresses (entries over 255 characters are
skipped, as rcl does). The deprecated `ROS_LOCALHOST_ONLY=1` still means `LOCALHOST` without
static peers (rcl `init.c`, Iron and Jazzy). `CYCLONEDDS_URI` is appended after the generated
fragment, so a user's configuration file overrides it, as in rmw_cyclonedds.

With `ROS_DISTRO=humble` the Humble rules apply instead (rmw_cyclonedds humble): Cyclone DDS's
defaults, or with `ROS_LOCALHOST_ONLY=1` the loopback interface 127.0.0.1 only.

Measured on a development machine with Cyclone DDS 11 (`test_ros_discovery.py` repeats it with
peers configured exactly as rmw_cyclonedds configures them): nodes in the default SUBNET range
and a Jazzy peer in SUBNET exchange data; so do LOCALHOST and LOCALHOST; but a LOCALHOST node and
a SUBNET node on the same machine do not (neither does the embedded transport's earlier loopback-
only default and a SUBNET peer) -- which is why the default follows Jazzy's.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping

from tdm_control.config import ConfigError

DOMAIN_ID_ENV = "ROS_DOMAIN_ID"
RANGE_ENV = "ROS_AUTOMATIC_DISCOVERY_RANGE"
PEERS_ENV = "ROS_STATIC_PEERS"
LOCALHOST_ONLY_ENV = "ROS_LOCALHOST_ONLY"
DISTRO_ENV = "ROS_DISTRO"
CYCLONEDDS_URI_ENV = "CYCLONEDDS_URI"
MAX_DOMAIN_ID = 232
"""Highest domain id whose ports fit the default DDSI port mapping."""
MAX_AUTO_PARTICIPANT_INDEX = 32
"""Participants (processes with a node) one machine can have per domain in SUBNET and LOCALHOST (rmw's 32)."""
MAX_PEER_LENGTH = 255
"""Longest static peer address rcl accepts (RMW_DISCOVERY_OPTIONS_STATIC_PEERS_MAX_LENGTH - 1)."""
RANGES = ("SUBNET", "LOCALHOST", "OFF", "SYSTEM_DEFAULT")
DEFAULT_RANGE = "SUBNET"
"""rcl's default when ROS_AUTOMATIC_DISCOVERY_RANGE is unset or empty."""


@dataclasses.dataclass(frozen=True)
class Discovery:
    """How one process joins the ROS 2 graph."""

    domain_id: int
    distro: str
    """'jazzy' or 'humble': the wire formats spoken (`tdm_control.ros.interfaces.DISTROS`)."""
    range: str
    """One of RANGES ('SUBNET' under Humble unless localhost-only: 'LOCALHOST')."""
    static_peers: tuple[str, ...]
    config: str | None
    """Cyclone DDS configuration to create the domain with; None: Cyclone reads CYCLONEDDS_URI itself."""
    warnings: tuple[str, ...] = ()
    user_config: bool = False
    """Whether CYCLONEDDS_URI adds to (and overrides) the configuration."""

    def describe(self) -> str:
        """A sentence for the node's first log line."""
        peers = f", static peers {', '.join(self.static_peers)}" if self.static_peers else ""
        uri = ", then CYCLONEDDS_URI" if self.user_config else ""
        return (f"domain {self.domain_id}, ROS 2 {self.distro} wire format, discovery range {self.range}"
                f"{peers}{uri}")


def distro_of(environ: Mapping[str, str]) -> str:
    """'humble' when ROS_DISTRO says humble, else 'jazzy' (Iron and later share Jazzy's formats)."""
    return "humble" if environ.get(DISTRO_ENV, "").strip().lower() == "humble" else "jazzy"


def domain_id_of(environ: Mapping[str, str]) -> int:
    """ROS_DOMAIN_ID (default 0); ConfigError outside 0..MAX_DOMAIN_ID."""
    text = environ.get(DOMAIN_ID_ENV, "").strip() or "0"
    try:
        domain_id = int(text)
    except ValueError:
        raise ConfigError(f"{DOMAIN_ID_ENV}={text!r} is not an integer") from None
    if not 0 <= domain_id <= MAX_DOMAIN_ID:
        raise ConfigError(f"{DOMAIN_ID_ENV}={domain_id} is outside 0..{MAX_DOMAIN_ID}")
    return domain_id


def static_peers_of(environ: Mapping[str, str], warnings: list[str]) -> tuple[str, ...]:
    """ROS_STATIC_PEERS split at ';' (rcl `rcl_get_discovery_static_peers`), too long entries skipped."""
    peers = []
    for peer in environ.get(PEERS_ENV, "").split(";"):
        peer = peer.strip()
        if not peer:
            continue
        if len(peer) > MAX_PEER_LENGTH:
            warnings.append(f"static peer {peer[:40]}... in {PEERS_ENV} is longer than {MAX_PEER_LENGTH} "
                            "characters: skipped")
            continue
        peers.append(peer)
    return tuple(peers)


def rmw_fragment(range_: str, peers: tuple[str, ...], pid: int) -> str:
    """The Cyclone DDS XML rmw_cyclonedds (Jazzy, `check_create_domain`) writes for a discovery range.

    Empty for SYSTEM_DEFAULT. Built element by element in rmw's order; `pid` names the OFF tag.
    """
    if range_ == "SYSTEM_DEFAULT":
        return ""
    localhost, use_peers, no_multicast = {"SUBNET": (False, True, False), "LOCALHOST": (True, True, True),
                                          "OFF": (False, False, True)}[range_]
    xml = "<CycloneDDS><Domain>"
    if no_multicast:
        xml += "<General><AllowMulticast>false</AllowMulticast></General>"
    if no_multicast and not localhost and not use_peers:
        # OFF: a tag no other process has; ParticipantIndex none lifts the per-machine limit.
        xml += f"<Discovery><ParticipantIndex>none</ParticipantIndex><Tag>ros_discovery_off_{pid}</Tag>"
    else:
        xml += ("<Discovery><ParticipantIndex>auto</ParticipantIndex>"
                f"<MaxAutoParticipantIndex>{MAX_AUTO_PARTICIPANT_INDEX}</MaxAutoParticipantIndex>")
    listed = (("localhost",) if localhost else ()) + (peers if use_peers else ())
    if listed:
        xml += "<Peers>" + "".join(f'<Peer address="{peer}"/>' for peer in listed) + "</Peers>"
    return xml + "</Discovery></Domain></CycloneDDS>"


HUMBLE_LOCALHOST_FRAGMENT = ('<CycloneDDS><Domain><General><Interfaces><NetworkInterface address="127.0.0.1"/>'
                             '</Interfaces></General></Domain></CycloneDDS>')
"""rmw_cyclonedds (Humble) with ROS_LOCALHOST_ONLY=1: the loopback interface only."""


def discovery_settings(environ: Mapping[str, str] | None = None) -> Discovery:
    """The discovery a ROS 2 node would use in environment `environ` (default os.environ).

    Raises:
      ConfigError for a ROS_DOMAIN_ID that is not an integer in 0..MAX_DOMAIN_ID.
    """
    env = os.environ if environ is None else environ
    domain_id = domain_id_of(env)
    distro = distro_of(env)
    warnings: list[str] = []
    localhost_only = env.get(LOCALHOST_ONLY_ENV, "").strip() == "1"
    if distro == "humble":
        range_, peers = ("LOCALHOST" if localhost_only else "SUBNET"), ()
        fragment = HUMBLE_LOCALHOST_FRAGMENT if localhost_only else ""
    else:
        peers = static_peers_of(env, warnings)
        text = env.get(RANGE_ENV, "").strip()
        if localhost_only:
            warnings.append(f"{LOCALHOST_ONLY_ENV} is deprecated but still honored: discovery range LOCALHOST"
                            + (f", {PEERS_ENV} ignored" if peers else "") + f" (use {RANGE_ENV})")
            range_, peers = "LOCALHOST", ()
        elif not text:
            range_ = DEFAULT_RANGE
        elif text in RANGES:
            range_ = text
        else:
            warnings.append(f"invalid value {text!r} for {RANGE_ENV} (one of {', '.join(RANGES)}): "
                            "assuming LOCALHOST, as ROS 2 does")
            range_ = "LOCALHOST"
        if peers and range_ in ("OFF", "SYSTEM_DEFAULT"):
            warnings.append(f"{len(peers)} static peer(s) in {PEERS_ENV} ignored: discovery range is {range_}")
            peers = ()
        fragment = rmw_fragment(range_, peers, os.getpid())
    uri = env.get(CYCLONEDDS_URI_ENV, "").strip()
    config = f"{fragment},{uri}" if fragment else None  # None: Cyclone DDS reads CYCLONEDDS_URI itself
    return Discovery(domain_id, distro, range_, peers, config, tuple(warnings), bool(uri))
