"""The stream events as the history sees them (defined in ``tickr.core.events``, which the store shares)."""

from tickr.core.events import SEQ_BITS, SEQ_MASK, StreamEvent, entry_seq

__all__ = ["SEQ_BITS", "SEQ_MASK", "StreamEvent", "entry_seq"]
