"""The workflow's steps in the track's order, one module each; each ``run(context)`` returns a
frozen result dataclass with ``to_json()``."""
