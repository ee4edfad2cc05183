"""Reply codes of the Lua scripts, mirrored from each script's header (``Codes:`` lines), one ``IntEnum`` each.

A contract test parses the headers and checks these enums say exactly the same; Python never compares a bare
number from a script reply.
"""

from __future__ import annotations

from enum import IntEnum


class EnqueueCode(IntEnum):
    """enqueue.lua"""

    CREATED = 1
    EXISTING = 0  # the idempotency key was known: the reply carries the existing job's id
    CONFLICT = -1  # the idempotency key was known, from a different request: nothing written


class JobChangeCode(IntEnum):
    """cancel.lua, replay.lua, update.lua"""

    DONE = 1
    NO_SUCH_JOB = -1
    WRONG_STATE = -2  # the reply carries the job's state


class FailCode(IntEnum):
    """fail.lua"""

    RETRYING = 1
    DEAD = 2
    STALE = -1  # the lease is no longer this worker's: nothing changed


class ScheduleSaveCode(IntEnum):
    """schedule_save.lua"""

    SAVED = 1
    ALREADY = 0  # "ensure" found it already
    EXISTS = -1  # "create" of an id that exists
    NO_SUCH_SCHEDULE = -2  # "update" of an unknown id
    VERSION_CONFLICT = -3  # "update" with a stale expected version


class ScheduleDeleteCode(IntEnum):
    """schedule_delete.lua"""

    DELETED = 1
    ALREADY_DELETED = 0
    NO_SUCH_SCHEDULE = -1


class ScheduleFireCode(IntEnum):
    """schedule_fire.lua"""

    ADVANCED = 1
    REFUSED = 0  # the schedule moved on, was changed, paused or deleted: nothing recorded


SCRIPT_CODES: dict[str, type[IntEnum]] = {
    "enqueue": EnqueueCode,
    "cancel": JobChangeCode,
    "replay": JobChangeCode,
    "update": JobChangeCode,
    "fail": FailCode,
    "schedule_save": ScheduleSaveCode,
    "schedule_delete": ScheduleDeleteCode,
    "schedule_fire": ScheduleFireCode,
}
