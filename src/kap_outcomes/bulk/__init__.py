"""FHIR Bulk Data export (``$export``) and the patient groups (cohorts) it can export."""
