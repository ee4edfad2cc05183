"""End-to-end tests that run tickr the way a user does: from a built wheel, in a fresh virtualenv."""
