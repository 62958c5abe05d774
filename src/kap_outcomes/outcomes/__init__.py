"""Clinic outcomes (clinical-rules.md section 7): cohort reports and CMS159, pure computation.

Like clinical/, this package reads no database, no HTTP and no clock: the reports/ package
loads the rows and passes them in.
"""
