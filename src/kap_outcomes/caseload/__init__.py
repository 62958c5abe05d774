"""The caseload: one row per patient, the ones who need attention first."""
