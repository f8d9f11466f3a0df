"""The review queue tests (a package, so its test module names cannot collide)."""
