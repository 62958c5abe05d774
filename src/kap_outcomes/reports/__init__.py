"""Clinic reports (clinical-rules.md section 7): cohort outcomes and CMS159, read in bulk."""
