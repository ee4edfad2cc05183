"""Pure domain model of tickr: jobs, states, retry policy, errors. No I/O."""
