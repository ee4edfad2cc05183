"""The events the Lua scripts append to each queue's stream (read by the history sink).

Every entry has ``e`` (the event) and ``id`` (the job id; a schedule id in the schedules stream); ``active`` and
``succeeded`` come as one entry per dequeue or ack, for all its jobs (see ``expand``). The time of
an event is its stream entry id (the Redis server clock, ms). Extra fields by event:

=============  ==========================  ===================================================================
event          written by                  extra fields
=============  ==========================  ===================================================================
``queued``     enqueue, replay, reap,      ``replayed=1`` (replay); reap and release: ``attempt``, ``lease``,
               release                     ``worker`` and ``reaped=1`` or ``released=1``
``scheduled``  enqueue (a future due time)
``parked``     dequeue (no worker of its    ``type``
               type)
``active``     dequeue                     ``attempt``, ``lease``, ``worker``, ``due`` (ms the attempt became due)
``succeeded``  ack                         ``attempt``, ``lease``, ``started``, ``worker``
``retrying``   fail                        ``attempt``, ``lease``, ``started``, ``worker``, ``error`` (JSON),
                                           ``due`` (of the next attempt)
``dead``       fail, reap, unrunnable      fail: ``attempt``, ``lease``, ``started``, ``worker``, ``error``;
                                           reap: ``attempt``, ``lease``, ``worker``, ``reaped=1``;
                                           unrunnable: ``reason``
``lost``       reap, release (at-most-     ``attempt``, ``lease``, ``worker``, ``reaped=1`` or ``released=1``
               once jobs are not re-run)
``cancelled``  cancel
``updated``    update (priority, due time
               or payload changed)
``saved``      schedule_save (schedules    ``version``, ``definition`` (JSON of the schedule hash)
               stream)
``deleted``    schedule_delete             ``version``
=============  ==========================  ===================================================================

``lease`` is the run's lease token, unique in its queue: the history keys runs by (job, lease), so a replayed
job (its attempts start again at 1) or a released one (its attempt is refunded) never overwrites an earlier run.
"""

from __future__ import annotations

from dataclasses import dataclass

# Stream ids are "<ms>-<seq>"; the sequence part is below 2**20 in practice (a script emits at most a few
# thousand events in one millisecond), so ms << 20 | seq orders events exactly and fits a BIGINT.
SEQ_BITS = 20
SEQ_MASK = (1 << SEQ_BITS) - 1


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One stream entry: the queue it belongs to ("" for the schedules stream), its entry id and fields."""

    queue: str
    entry_id: str
    fields: dict[str, str]

    @property
    def event(self) -> str:
        return self.fields.get("e", "")

    @property
    def subject(self) -> str:
        """The job id (a schedule id in the schedules stream)."""
        return self.fields.get("id", "")

    @property
    def at_ms(self) -> int:
        """When it happened: the ms part of the entry id (the Redis server clock)."""
        return int(self.entry_id.partition("-")[0])

    @property
    def seq(self) -> int:
        """A total order of the stream's events as one integer (see ``SEQ_BITS``)."""
        return entry_seq(self.entry_id)

    def int_field(self, name: str) -> int | None:
        value = self.fields.get(name)
        try:
            return int(value) if value not in (None, "") else None
        except ValueError:
            return None


def expand(fields: dict[str, str]) -> list[dict[str, str]]:
    """One entry's events: itself, or for a batch entry (``*id`` and other ``*<field>`` lists, space-separated,
    one value per job; written by one dequeue or ack for all its jobs) one event per job."""
    if "*id" not in fields:
        return [fields]
    common = {k: v for k, v in fields.items() if not k.startswith("*")}
    lists = {k[1:]: v.split(" ") for k, v in fields.items() if k.startswith("*")}
    ids = lists["id"]
    return [common | {name: values[i] for name, values in lists.items() if i < len(values)} for i in range(len(ids))]


def entry_seq(entry_id: str) -> int:
    """``"1700000000000-3"`` -> one sortable integer (``ms << SEQ_BITS | min(seq, SEQ_MASK)``)."""
    ms, _, seq = entry_id.partition("-")
    return (int(ms) << SEQ_BITS) | min(int(seq or 0), SEQ_MASK)
