"""What readers did, as numbers a ranker can use, kept up to date event by event.

- **Popularity**: per article, impressions and clicks with exponential time decay (half-life
  ``half_life_hours``, default 6: news is short-lived) and a smoothed CTR: clicks plus
  ``prior_impressions`` impressions at the site's mean CTR, over impressions plus the same, so
  one click in two impressions is not "50 %" (a Beta prior; empirical Bayes).
- **Co-reading**: "readers of A went on to read B": when a reader reads B within
  ``co_read_window_hours`` of reading A, A -> B gains a decayed count; each A keeps its top
  ``co_read_top``.
- **Reader history**: a reader's last ``history_length`` reads (a click is a read of its
  target), so ``Recommend`` can take a reader key.

Decay is *forward* decay (Cormode et al., ICDE 2009): an event at time t adds
2^((t - landmark) / half-life), and a value read at time T is divided by 2^((T - landmark) /
half-life), so no counter is touched when time passes and the sum does not depend on the order
events arrive in. Events are applied in the log's order (``seq``), so signals kept live and
signals recomputed from the log (``Signals.replay``) hold the same values.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from recommender.errors import InvalidInputError
from recommender.events.log import EventLog, StoredEvent

RENORMALISE_AT = 900.0  # exponent of 2 past which the landmark moves (float64 ends at 1023)


@dataclass(frozen=True)
class SignalSettings:
    """How behaviour is counted (``serve``/``train-ranker`` flags)."""

    half_life_hours: float = 6.0
    prior_impressions: float = 20.0
    co_read_window_hours: float = 24.0
    co_read_top: int = 50
    history_length: int = 50

    def __post_init__(self) -> None:
        if not (self.half_life_hours > 0 and self.prior_impressions >= 0):
            raise InvalidInputError("half-life > 0 and prior >= 0", field="signal_settings")
        if self.co_read_top < 1 or self.history_length < 1:
            raise InvalidInputError("co_read_top and history_length >= 1",
                                    field="signal_settings")  # fmt: skip


@dataclass
class Signals:
    """Behaviour signals of one event log, applied event by event (``apply``)."""

    settings: SignalSettings = field(default_factory=SignalSettings)
    landmark: float | None = None
    shown: dict[int, float] = field(default_factory=dict)  # article -> forward-decayed weight
    clicked: dict[int, float] = field(default_factory=dict)
    total_shown: float = 0.0
    total_clicked: float = 0.0
    co_read: dict[int, dict[int, float]] = field(default_factory=dict)
    histories: dict[bytes, collections.deque[tuple[int, float]]] = field(default_factory=dict)
    first_seen: dict[int, float] = field(default_factory=dict)  # article -> earliest event
    last_seq: int = 0
    applied: int = 0

    @classmethod
    def replay(cls, events: Iterable[StoredEvent], settings: SignalSettings | None = None,
               ) -> Signals:  # fmt: skip
        """Signals recomputed from stored events (the batch path)."""
        signals = cls(settings or SignalSettings())
        for event in events:
            signals.apply(event)
        return signals

    def catch_up(self, log: EventLog) -> int:
        """Apply the log's events this object has not seen (other processes' too)."""
        count = 0
        for event in log.events(after_seq=self.last_seq):
            self.apply(event)
            count += 1
        return count

    # -- applying --------------------------------------------------------------------------

    def apply(self, event: StoredEvent) -> None:
        """Count one stored event."""
        self.last_seq = max(self.last_seq, event.seq)
        self.applied += 1
        weight = self._weight(event.at)
        for article in (*event.ids, event.target):
            if article is not None and event.at < self.first_seen.get(article, math.inf):
                self.first_seen[article] = event.at
        if event.kind == "impression":
            for article in set(event.ids):
                self.shown[article] = self.shown.get(article, 0.0) + weight
                self.total_shown += weight
        elif event.kind == "click" and event.target is not None:
            self.clicked[event.target] = self.clicked.get(event.target, 0.0) + weight
            self.total_clicked += weight
            self._read(event.reader, event.target, event.at, weight)
        elif event.kind == "read" and event.target is not None:
            self._read(event.reader, event.target, event.at, weight)

    def _read(self, reader: bytes, article: int, at: float, weight: float) -> None:
        history = self.histories.get(reader)
        if history is None:
            history = self.histories[reader] = collections.deque(
                maxlen=self.settings.history_length
            )
        if any(seen == article for seen, _ in itertools.islice(reversed(history), 5)):
            return  # the page view after the click that led to it: one read
        window = self.settings.co_read_window_hours * 3600
        for before, when in history:
            if before != article and at - when <= window:
                self._co_read(before, article, weight)
        history.append((article, at))

    def _co_read(self, a: int, b: int, weight: float) -> None:
        targets = self.co_read.setdefault(a, {})
        targets[b] = targets.get(b, 0.0) + weight
        top = self.settings.co_read_top
        if len(targets) > 2 * top:  # keep the top N (amortised: trimmed at twice N)
            kept = heapq.nlargest(top, targets.items(), key=lambda item: (item[1], -item[0]))
            self.co_read[a] = dict(kept)

    def _weight(self, at: float) -> float:
        if self.landmark is None:
            self.landmark = at
        exponent = (at - self.landmark) / self._half_life_s
        if exponent > RENORMALISE_AT:  # move the landmark: scale every weight down once
            self._rescale(exponent)
            exponent = 0.0
        return math.pow(2.0, exponent)

    def _rescale(self, exponent: float) -> None:
        factor = 2.0**-exponent
        for table in (self.shown, self.clicked, *self.co_read.values()):
            for key in table:
                table[key] *= factor
        self.total_shown *= factor
        self.total_clicked *= factor
        assert self.landmark is not None
        self.landmark += exponent * self._half_life_s

    @property
    def _half_life_s(self) -> float:
        return self.settings.half_life_hours * 3600

    # -- reading ---------------------------------------------------------------------------

    def _fade(self, now: float) -> float:
        """What a stored weight is multiplied by to be read at ``now`` (0 far in the future:
        an underflow, never an overflow)."""
        if self.landmark is None:
            return 1.0
        return math.pow(2.0, -max(-RENORMALISE_AT, (now - self.landmark) / self._half_life_s))

    def impressions(self, article: int, now: float) -> float:
        """Decayed impressions of an article at ``now``."""
        return self.shown.get(article, 0.0) * self._fade(now)

    def clicks(self, article: int, now: float) -> float:
        """Decayed clicks of an article at ``now``."""
        return self.clicked.get(article, 0.0) * self._fade(now)

    @property
    def mean_ctr(self) -> float:
        """The site's CTR (clicks over impressions), the prior's mean."""
        return self.total_clicked / self.total_shown if self.total_shown > 0 else 0.0

    def ctr(self, article: int, now: float) -> float:
        """Smoothed CTR: (clicks + prior x mean) / (impressions + prior)."""
        prior = self.settings.prior_impressions
        shown, clicked = self.impressions(article, now), self.clicks(article, now)
        if shown + prior <= 0:
            return self.mean_ctr
        return (clicked + prior * self.mean_ctr) / (shown + prior)

    def co_reads(self, a: int, b: int, now: float) -> float:
        """Decayed count of readers of ``a`` who went on to read ``b``."""
        return self.co_read.get(a, {}).get(b, 0.0) * self._fade(now)

    def co_read_top_of(self, a: int, n: int, now: float) -> list[tuple[int, float]]:
        """The ``n`` articles most read after ``a``, with their decayed counts."""
        targets = self.co_read.get(a, {})
        top = heapq.nlargest(n, targets.items(), key=lambda item: (item[1], -item[0]))
        fade = self._fade(now)
        return [(b, w * fade) for b, w in top]

    def history(self, reader: bytes) -> list[int]:
        """A reader's recent reads, oldest first (int ids)."""
        return [article for article, _ in self.histories.get(reader, ())]

    def state(self, now: float) -> dict[str, object]:
        """Every value at ``now``, rounded: what live and recomputed signals must agree on."""

        def rounded(value: float) -> float:
            return float(f"{value:.9g}") if math.isfinite(value) else value

        return {
            "impressions": {a: rounded(self.impressions(a, now)) for a in sorted(self.shown)},
            "clicks": {a: rounded(self.clicks(a, now)) for a in sorted(self.clicked)},
            "mean_ctr": rounded(self.mean_ctr),
            "co_read": {
                a: dict(sorted((b, rounded(w)) for b, w in self.co_read_top_of(a, 10**9, now)))
                for a in sorted(self.co_read)
            },
            "histories": {r: self.history(r) for r in sorted(self.histories)},
            "first_seen": dict(sorted(self.first_seen.items())),
        }
