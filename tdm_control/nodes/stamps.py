"""Which joint states the planner takes: one stamp policy for both executions (lockstep and async).

A joint state carries the time it was measured (`header.stamp`). Within an
episode the planner sorts each state into one of these, in this order:

* **bad stamp**: a negative time (no ROS time is negative). Never taken; an error.
* **first**: the episode's first state is taken whatever its stamp (a simulator
  starts at 0, a robot stamps with the time of day).
* **re-send**: the stamp of the state taken last. A lockstep bridge re-sends a
  state until it is answered; it gets no second answer (said at debug level).
* **new**: a later stamp. Taken.
* **episode change**: the bridge announces each episode on its latched topic (the
  core handles that). Without an episode topic, a stamp earlier than the last
  means the simulation was reset: taken as the next episode's first state.
* **stale**: with an episode topic, a stamp earlier than the last taken. Not
  taken (a late message, or another publisher on the topic); a warning.

One state must not be able to block the loop. A state stamped in the future
(forged, or from a foreign clock) would make every later real state stale, and a
lockstep bridge would wait for ever. So `STALE_RUN` stale states in a row prove
the last taken stamp was the odd one out: the policy drops it, takes the state in
hand, and says so in an error; the caller starts the episode's planning afresh
from it (its history held the bad state). A lockstep bridge re-sends its state
every `republish_period`, so the loop stalls for at most `STALE_RUN` of them.
"""

from __future__ import annotations

import dataclasses

from tdm_control import topics

STALE_RUN = 3
"""Stale states in a row after which the last taken stamp is judged bad and dropped. One or two
can be stragglers of a restarted bridge that overtook its episode announcement."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What to do with one joint state, and what to say about it."""

    take: bool
    """Whether the state is answered (lockstep) or planned from (async)."""
    new_episode: bool = False
    """Without an episode topic: time went back, the state begins the next episode."""
    restart: bool = False
    """The last taken stamp was dropped as bad: plan the episode afresh from this state."""
    level: str = ""
    """'' (nothing to say), 'debug', 'info', 'warning' or 'error'."""
    kind: str = ""
    """The kind of message, for throttling (one per verdict)."""
    message: str = ""


class StampPolicy:
    """The stamps of one episode's states, sorted as the module docstring says.

    Args:
      uses_episode_topic: episodes are announced (a stamp going back is then stale, not a reset).
      topic: the joint-state topic, for messages.
      stale_run: see `STALE_RUN`.
    """

    def __init__(self, uses_episode_topic: bool, topic: str = topics.JOINT_STATES, stale_run: int = STALE_RUN) -> None:
        self.uses_episode_topic = uses_episode_topic
        self.topic = topic
        self.stale_run = stale_run
        self.last: int | None = None
        """Stamp of the state taken last in this episode (ns); None before the first."""
        self.stale = 0
        """Stale states in a row."""

    def start_episode(self) -> None:
        """A new episode: the next state is taken whatever its stamp."""
        self.last, self.stale = None, 0

    def check(self, stamp_ns: int) -> Verdict:
        """The verdict on a state stamped `stamp_ns`; the policy moves on when the state is taken."""
        if stamp_ns < 0:
            return Verdict(False, level="error", kind="bad stamp",
                           message=f"joint state on {self.topic} stamped {stamp_ns * 1e-9:.9f} s: no ROS time is "
                                   "negative; ignored")
        last = self.last
        if last is None or stamp_ns > last:
            self.last, self.stale = stamp_ns, 0
            return Verdict(True)
        if stamp_ns == last:
            self.stale = 0
            return Verdict(False, level="debug", kind="re-send",
                           message=f"re-send of the joint state at {stamp_ns * 1e-9:.3f} s: already taken")
        if not self.uses_episode_topic:
            self.last, self.stale = stamp_ns, 0
            return Verdict(True, new_episode=True, level="info", kind="time went back",
                           message=f"joint states went back in time from {last * 1e-9:.3f} s to "
                                   f"{stamp_ns * 1e-9:.3f} s: the simulation was reset, a new episode begins")
        self.stale += 1
        if self.stale < self.stale_run:
            return Verdict(False, level="warning", kind="stale",
                           message=f"joint state on {self.topic} stamped {stamp_ns * 1e-9:.3f} s is older than the "
                                   f"one taken last ({last * 1e-9:.3f} s) in this episode: ignored (a late "
                                   "message, or another publisher on the topic?)")
        self.last, self.stale = stamp_ns, 0
        return Verdict(True, restart=True, level="error", kind="bad stamp dropped",
                       message=f"{self.stale_run} joint states in a row on {self.topic} are older than the one "
                               f"taken last, stamped {last * 1e-9:.3f} s: that stamp was bad (a forged state, or "
                               f"another publisher); following these states from {stamp_ns * 1e-9:.3f} s and "
                               "planning the episode afresh")


__all__ = ["STALE_RUN", "StampPolicy", "Verdict"]
