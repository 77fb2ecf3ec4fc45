"""Pure policy and models: standard library and pydantic only, the clock passed in."""
