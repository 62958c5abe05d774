"""Pure clinical logic of kap-outcomes.

Values in, values out: no web framework, no database, no clock, no settings, no logging.
Every rule cites its source in ../shared/docs/clinical-rules.md.
"""
